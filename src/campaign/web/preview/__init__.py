"""`campaign preview`: a local server that shows each campaign as a subscriber will see it.

Each campaign is built by the same `campaign.compile.build` a send uses (so an
unchanged campaign comes from the same build cache as `campaign build`) and
personalised for a sample subscriber by the send engine's `Personaliser`, then
shown in iframes at desktop and phone widths. Saving a source file rebuilds it and
reloads the open pages (see `campaign.web.watch`).

Nothing clicked in a preview can touch a real subscriber: the links of the public
pages are pointed at this server's stand-ins (/preview-pages/...), and their tokens
are signed with a key that exists only in this process.

    state.py    the Preview: campaigns, builds, the sample subscriber, the watcher
    pages.py    the endpoints
    app.py      create_preview_app: routes, middleware, app.state
    server.py   listen and run
"""

from campaign.web.preview.app import create_preview_app
from campaign.web.preview.pages import send_test_message
from campaign.web.preview.server import listen, run
from campaign.web.preview.state import Preview, emulate_dark, find_sample

__all__ = [
    "Preview",
    "create_preview_app",
    "emulate_dark",
    "find_sample",
    "listen",
    "run",
    "send_test_message",
]
