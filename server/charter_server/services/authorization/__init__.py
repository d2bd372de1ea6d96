"""Generation-time authorization: ``Authorize`` decides every character of a request from memory.

The parts: ``command`` (the request and the answer as domain values), ``validation``, ``view``
(the in-memory view and its poller), ``decision`` (gathers the inputs and calls `charter.decide`),
``receipt`` (the signed receipt: the one place here that writes protobuf), ``quotas`` (counting
uses, and replaying a retried request) and ``service`` (`AuthorizationService`, which runs them);
``simulate`` answers ``SimulateUse`` (the what-if) with the same ``decision`` step, and
``preview`` answers ``PreviewTerms`` (proposed terms replayed over recent decisions).

**What is decided.** Every character the request declares, and every character its prompt names
(``charter_server.services.screening``; a match of an alias marked ambiguous is reported but
decided only if declared), gets one decision from `charter.decide` (``decision``), the same
decision the SDK's offline authorizer makes, in its documented order:

1. the licensee is archived → ``LICENSEE_ARCHIVED``;
2. the character is suspended → ``CHARACTER_SUSPENDED``; not opted in → ``CHARACTER_NOT_OPTED_IN``;
3. the candidate grants are the ones the request presents for the character, if any (each
   verified with the shared ``charter.grants`` verifier), otherwise the licensee's grants on
   record; none → ``NO_GRANT``;
4. each candidate, newest first, has at most one problem of its own, the first of: it does not
   verify (or its key was revoked since) → ``GRANT_INVALID``; revoked; suspended; not yet valid;
   expired. Otherwise its terms are evaluated by the shared pure evaluator (``charter.terms``)
   against the use context, the licensee, its platform, the server's time and the request's
   other characters. The first candidate that allows decides; when none does, the reasons
   reported are those of the newest candidate whose grant itself is good (its failed terms), or
   else of the newest candidate.

The request is allowed only if every decided character is. Then, and only then, uses under terms
with a daily or monthly quota, and under grants with a lifetime cap (``max_uses``), are counted:
one conditional update per quota in one transaction,
so that concurrent requests on any number of servers never exceed a quota; when one is used up,
nothing is counted, the character is denied with ``QUOTA_EXHAUSTED`` and so is the request. A
request with a ``request_id`` whose decision counted a quota is kept, so a retry returns it rather
than counting again (a concurrent copy that lost the race is ``ABORTED``, ``REQUEST_IN_PROGRESS``).
The response carries a **decision receipt** (``receipt``): a DSSE
envelope of its own payload type, signed by the active signing key, over a ``DecisionReceipt``
that holds the digest of the request, the decisions, the validated use context, the licensee and
the time; the servicer drops the request's unknown fields before its digest, so nothing
unvalidated is signed.

**Why memory, and how it stays correct.** The common request touches no database: the view of
characters, licensees, grants and keys that decisions read is kept in memory per *generation*.
Every change that an authorization may depend on raises a counter (the authorization epoch) in
the same transaction (the unit of work, once per commit whose events affect authorization; see
``storage.uow`` and ``domain.events``). A thread polls the counter
several times per lease; when it moved, a new, empty generation replaces the old one and fills
lazily from the database. A generation is trusted only for ``lease`` seconds after the start of
the last poll that confirmed it, and a request that finds it older polls itself (and fails with
a retryable error if the database cannot be read: fail closed). A decision that took longer
than what was left of the lease is answered only if a poll right after it finds the epoch
unchanged (`AuthorizationView.confirm`), else it is decided again (three times at most). So a
decision at time *t* reads data that was current at some time after *t - lease*. Every change that takes something away
(a grant revoked or suspended, a character opted out, suspended or archived, a licensee archived,
a signing key or an API key revoked) returns to its caller only after waiting ``lease`` after its
commit (`AuthorizationView.settle`): after that, no server anywhere still allows what it took away.

The lease is the deployment's, kept in the database (``storage.serving``) and read with the epoch
at every poll, so replicas started with other settings cannot disagree; when it is changed, a
change that takes something away waits for the old lease too, for as long as a replica may still
be trusting it (``LeaseSetting.longest``, by the database's clock).
"""

from __future__ import annotations

from charter_server.services.authorization.command import AuthorizeCommand, UseRequest
from charter_server.services.authorization.preview import PreviewCommand, PreviewResult, TermsChange
from charter_server.services.authorization.receipt import AuthorizeResult
from charter_server.services.authorization.service import AuthorizationService
from charter_server.services.authorization.simulate import ProposedTerms, SimulateCommand, SimulateResult
from charter_server.services.authorization.validation import MAX_CHARACTERS, MAX_GRANTS, MAX_SIGNATURES_PER_REQUEST
from charter_server.services.authorization.view import AuthorizationView

__all__ = [
    "MAX_CHARACTERS",
    "MAX_GRANTS",
    "MAX_SIGNATURES_PER_REQUEST",
    "AuthorizationService",
    "AuthorizationView",
    "AuthorizeCommand",
    "AuthorizeResult",
    "PreviewCommand",
    "PreviewResult",
    "ProposedTerms",
    "SimulateCommand",
    "SimulateResult",
    "TermsChange",
    "UseRequest",
]
