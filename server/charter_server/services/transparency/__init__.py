"""The transparency log on the server: appending entries with the changes they record
(`appender`), integrating them into the Merkle tree and signing checkpoints (`sequencer`),
buffering decision receipts off the hot path (`receipts`), and serving checkpoints, proofs and
entries (`reader`). The hashing, tiles and note formats are the SDK's pure
``charter.transparency``, so the server and every verifier share one implementation of the
formats, and tests check it against independent ones."""
