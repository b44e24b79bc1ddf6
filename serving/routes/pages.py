"""The pages for people, assembled into one router that `serving.app` includes after the API.

Session and login (`serving.pages.login`, rules in `serving.pages.session`), the lead record
(`serving.pages.lead`), the funnel report (`serving.pages.report`) and the shared vocabulary with
the preview of a proposed file (`serving.pages.definitions`); the view models the
templates read are in `serving.pages.views`. Server-rendered Jinja2, autoescaping on, charts as
inline SVG, no front-end build.
"""

from __future__ import annotations

from fastapi import APIRouter

from serving.pages import definitions, lead, login, report
from serving.pages.session import COOKIE, is_loopback

__all__ = ["COOKIE", "is_loopback", "router"]  # the cookie's name and the loopback rule, for callers of the pages

router = APIRouter(include_in_schema=False)
router.include_router(login.router)
router.include_router(lead.router)
router.include_router(report.router)
router.include_router(definitions.router)
