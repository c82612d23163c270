//! The compile errors a user sees for the usual mistakes. The expected
//! output is in `tests/ui/*.stderr`; regenerate it with `TRYBUILD=overwrite`
//! after reading the new output, since these messages are part of the API.

#[test]
fn mistakes_fail_to_compile_with_readable_errors() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
