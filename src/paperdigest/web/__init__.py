"""The web side of the email: signed links (tokens, links, secret) and the small app that
`paperdigest serve` runs (app). Only `app` imports Starlette."""
