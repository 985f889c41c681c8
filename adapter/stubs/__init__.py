"""Local stand-ins for the national PDL services (consent, blocks, access log), for development, demos and
tests. Each is a FastAPI app serving the RIVTA interactions at the platform's paths, validating requests
against the project's schemas, answering from a seed file (adapter/stubs/seed.dev.toml), and able to be
switched to misbehave (fault, down, close, slow). Never for production: they check no caller."""
