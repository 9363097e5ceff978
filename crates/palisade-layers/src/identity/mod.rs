//! Who is calling: JWT and API keys (issue 9): being built.
