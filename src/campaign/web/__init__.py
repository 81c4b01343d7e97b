"""The web side: `campaign serve` (public pages and webhooks, `campaign.web.app`) and
`campaign preview` (the local editing server, `campaign.web.preview`)."""
