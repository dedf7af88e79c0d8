//! Pieces of the benchmark harness (`tests/bench/run`): a fixed upstream, a no-op Pingora
//! passthrough with actas's Pingora settings, and in-process measurements of the audit
//! writer and password hashing. Nothing here is part of the product or its test suite.
