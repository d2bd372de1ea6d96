"""The web console: pages for rights holders, staff and auditors, served by ``charter-server console``.

It is a client of Charter's gRPC API through the SDK's `charter.AsyncClient`, calling as the key
the user signed in with, so every permission is the API's own and nothing is checked twice. Pages
are rendered on the server (Starlette and Jinja2, autoescaped); the little script there is is the
vendored htmx (``static/htmx.min.js``, 0BSD, see ``static/htmx.LICENSE.txt``), and every page
works without it. Keys stay on the console's server in sessions (`sessions`); the browser holds
only an HttpOnly, SameSite=Strict cookie, and every form carries the session's CSRF token.
"""
