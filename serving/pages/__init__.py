"""Pages for people: session and login, the lead record, the funnel report, and the views they render."""
