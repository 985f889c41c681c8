"""The consumer side: what a hospital (or any care provider outside the municipality) needs before its
staff may read a patient's NPÖ overview.

Under PDL's rules for sammanhållen journalföring the reading organisation is responsible for checking
consent (or emergency access), blocks, and for logging every access. `adapter.consumer.pdl` holds the
clients for the national services that do this.
"""
