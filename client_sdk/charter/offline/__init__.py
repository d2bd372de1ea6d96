"""The offline authorizer: generation-time decisions from grants the SDK holds, failing closed.

The package's parts: ``authorizer`` (`OfflineAuthorizer`: lifecycle, requests, asking the
server), ``held`` (the held grants and their checks against a key ring), ``revocations`` (the
view of the revocation log), ``keys`` (the key set and the licensee), ``freshness`` (ages on two
clocks), ``background`` (the threads that keep both current), ``decisions`` (one character
decided with `charter.decide`), ``local`` (a request decided here, and the registry snapshot's
thread) and ``snapshot`` (registry snapshot pages verified and assembled).

`OfflineAuthorizer` holds the caller's grants (DSSE envelopes, as ``IssueGrant`` returned them),
keeps the key set and a view of the revocation log current in the background, and decides
``authorize`` requests locally with the same verifier (`charter.grants`) and terms evaluator
(`charter.terms`) as the server. When it cannot decide safely on its own it asks the server
(``Client.authorize``); when the server cannot be reached either, it **denies** every character
with `DenyReason.SERVER_UNREACHABLE`.

**What it keeps current.** `start` reads the caller's API key (``GetCaller``: it must be a
generator key, bound to a licensee), the licensee's platform (``GetLicensee``) and the key set
(``GetKeySet``). Then two daemon threads run until `close`:

* the *watcher* reads ``WatchRevocations`` from sequence 0: every revocation, suspension and
  reinstatement of the log, in order, into a map grant id → state. A heartbeat carries the head
  of the log; when the watcher has applied every event up to it, the view is *current as of*
  the local clock's time at which the heartbeat arrived (`fresh_as_of`; this overstates the
  view's freshness by the heartbeat's transit time, normally a millisecond or so; the monotonic
  clock's time is taken too). An event out of order (a gap) or a heartbeat ahead of the events
  makes it reconnect; a heartbeat behind the events seen, or the server refusing to resume after
  the last sequence applied (``INVALID_ARGUMENT``: a log that went backwards, restored or failed
  over to a replica behind), drops the view and reads the log again from 0, so no event of its new
  history is skipped; the view is not current until a heartbeat at the new head. On any error
  the watcher reconnects with exponential backoff and jitter (``min_backoff`` doubling up to
  ``max_backoff``), resuming after the last sequence it applied. A stream that delivers nothing
  for ``idle_timeout`` is dropped and reopened.
* the *refresher* fetches the key set and the licensee again every ``key_refresh`` and, at most
  every few seconds, as soon as a held grant names a key the ring does not know. The ring is
  replaced only when the key set's version moved, so an unchanged key set costs no
  re-verification.

**When it decides offline.** A request is decided offline only when all of these hold:

1. the revocation view is fresh: ``0 <= clock() - fresh_as_of <= max_staleness`` and no more
   than ``max_staleness`` has passed on the monotonic clock since that heartbeat, and the key set
   was fetched within ``key_refresh + max_staleness``, on ``clock`` and on the monotonic clock
   alike (a key set that cannot be refreshed ages like the revocation view). Every age is
   measured on both clocks (`charter.offline.freshness`): a clock stepped back stretches none of
   them, one stepped forward ends them sooner, and a time kept in the cache directory that is
   later than the clock's now is too old from the start. A heartbeat whose ``server_time`` is
   more than ``skew`` ahead of the clock, or more than ``skew`` plus a second (its time in transit)
   behind it, does not make the view current (a clock that lags would honour grants after Charter
   deems them expired, one that runs ahead would honour them before their ``not_before``);
2. it has seen the sequence number ``min_sequence`` that the caller passes, for example the one
   ``RevokeGrant`` returned, so that a revocation the caller knows of is never decided on an
   older view ("new enemy");
3. there is no prompt, or (with ``screen_locally``) the registry snapshot is current: verified
   with the key set, and current as of a heartbeat within ``max_staleness`` on both clocks
   (`charter.offline.local`). The prompt is then screened here with the server's matcher, and
   every character it names unambiguously is decided as a declared one is (a character the
   snapshot says is suspended, opted out or archived is denied as the server denies it);
4. every declared character has a held grant, and is decided by one: the first grant (newest
   first) that allows the use must have terms without a daily or monthly quota and no cap of
   uses (``max_uses``), or else a use of a quota lease the authorizer holds for it (only with a
   ``signer``: `charter.offline.leases`; quotas and caps are counted by the server, which counts
   a lease's uses when it leases them), and no grant before it may name a key that the ring does
   not know or carry, in its signed claims or terms, a field this SDK does not know (a newer
   server's term: upgrade the SDK before the server issues such grants). A denial is decided
   offline whatever the terms;
5. the licensee is not archived (as of the last refresh).

Otherwise the request goes to the server, with the held grants of its characters (and, when
there is a prompt, the other held grants too, up to 64), so the server decides on exactly those
grants. When the call fails with ``UNAVAILABLE`` or ``DEADLINE_EXCEEDED`` (also when no
connection can be made), the answer is a denial, ``offline=True`` and ``allowed=False`` (also
for a prompt-only request, which then has no characters), each declared character with why it
was not decided offline: ``REVOCATIONS_STALE`` when the view was current once and is now older
than ``max_staleness`` (or the key set older than its grace), ``LICENSEE_ARCHIVED``,
``CACHE_CORRUPTED`` when the cache failed its check (until the view is current again); else, for
the character that stopped the offline decision, ``UNKNOWN_KEY`` (its grant's key is not in the
ring) or ``LEASE_EXPIRED`` (a quota or cap and no leased use to spend), ``SNAPSHOT_STALE``,
``SNAPSHOT_INVALID`` or ``CACHE_CORRUPTED`` for a prompt that could not be screened here (see
`charter.offline.local`), and ``SERVER_UNREACHABLE`` for everything else (never current, behind
``min_sequence``, no grant held, a grant with fields this SDK does not know, a prompt without
``screen_locally``). Any other error (for example ``UNAUTHENTICATED`` for a revoked API key) is
raised.

**How a character is decided offline.** With `charter.decide`, the decision the server makes
too, in its documented order. Each held grant for it, newest first (by its claimed issue time), is
verified with a `GrantVerifier` for this licensee and character: a grant whose key the ring does
not know cannot be decided offline; any other failure of the envelope, the signature, the key or
the parties is ``GRANT_INVALID``. Then: revoked or suspended in the view → ``GRANT_REVOKED`` or
``GRANT_SUSPENDED``; before its ``not_before`` (less the skew) → ``GRANT_NOT_YET_VALID``; at or
after its ``expire_time`` (plus the skew) → ``GRANT_EXPIRED``; otherwise its signed terms are
evaluated (`CompiledTerms.evaluate`) against a `UseContext` with this licensee, its platform, the
local clock's time and the request's other characters as co-characters. The first grant that
allows decides, with its obligations; when none does, the reasons are those of the newest grant
that is itself good (its failed terms), or else the newest grant's own problem, as the server
reports them. The request is allowed only if
every character is. An offline decision carries no receipt (``receipt=None``, ``offline=True``).

**What it sees late or not at all.** The revocation log records grants revoked, suspended and
reinstated, characters suspended and reinstated by staff, and characters opted out, opted in
again and archived: a suspended character is denied offline with ``CHARACTER_SUSPENDED``, and an
opted-out or archived one with ``CHARACTER_NOT_OPTED_IN`` (as the server denies them), as soon as
its event arrives. The log does not record a licensee archived; the authorizer learns of that at its
next refresh. A signing key revoked on the server stops verifying offline at the next key-set
refresh.

**Cost.** The view holds one entry per grant that the log names as revoked or suspended (every
licensee's: the stream is not filtered), plus the held grants. Verified grants are remembered
with their compiled terms and the key ring they were checked against; the verifier also caches
verified envelopes by digest, so even a new key ring causes no signature work (nor compiling the
terms again). A warm decision (`decide`) reads the clock and does dict look-ups, two
comparisons for the validity window, a status look-up, a key-ring identity check and
`CompiledTerms.evaluate`, and returns a shared `CharacterDecision`; it takes no lock. Call
`warm_up` after `add_grants` to do the signature work before the first decision.

Thread-safety: every method may be called from any number of threads while the background
threads update the view.

Example:
    ```python
    from datetime import timedelta

    import charter
    from charter.offline import OfflineAuthorizer
    from charter.v1 import terms_pb2

    client = charter.Client("charter.internal:50051", api_key=generator_key)
    with OfflineAuthorizer(client, grants=held_envelopes, max_staleness=timedelta(seconds=30)) as authorizer:
        decision = authorizer.authorize(
            character_ids=["chr_..."],
            use_type=terms_pb2.USE_TYPE_VIDEO_GENERATION,
            content_rating=terms_pb2.CONTENT_RATING_TEEN,
            territory="JP",
        )
        if decision.allowed:
            render(obligations=decision.obligations)
    ```
"""

from __future__ import annotations

from charter.offline.authorizer import CONTEXT_TOLERANCE, OfflineAuthorizer
from charter.offline.fallback import MAX_GRANTS_PER_REQUEST as MAX_GRANTS_PER_REQUEST

__all__ = ["CONTEXT_TOLERANCE", "OfflineAuthorizer"]
