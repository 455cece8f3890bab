"""Payments: escrow on a card processor, capture, settlement, refunds and disputes, recorded on a
double-entry ledger.

Framework-free (no Flask, no Celery): the API and the tasks call the same commands.

* ``gateway``: the one processor interface, its value objects and errors.
* ``offline`` / ``stripe_gateway``: the two implementations; ``config.make_gateway`` picks one.
* ``keys``: the deterministic idempotency key of every money call.
* ``escrow``: the pure rules (escrow states, hold timing, capture/refund amounts, eligibility).
* ``ledger``: accounts and balanced postings.
* ``holds``, ``capture``, ``settlement``, ``accounts``, ``webhooks``, ``reconciliation``: the
  commands, each state-checked under the escrow's row lock so it is safe to run twice.
"""
