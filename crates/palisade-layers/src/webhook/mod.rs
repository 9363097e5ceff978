//! Inbound webhook signature verification (issue 9): being built.
