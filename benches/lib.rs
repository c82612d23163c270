//! Nothing but benchmarks: see the `*.rs` files beside this one.
