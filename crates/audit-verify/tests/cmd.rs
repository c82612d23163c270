//! The command line as data: each `tests/cmd/*.md` holds commands and the
//! exact output and exit code they must give, run against the binary cargo
//! built for the tests (`TRYCMD=overwrite` rewrites the expected output,
//! to be read before it is committed).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[test]
fn commands_give_the_documented_output() {
    // A checkout gives files the mode of the umask; the verifier warns
    // about a key others can read, so the fixture key is made private as a
    // key would be.
    let key = Path::new("tests/cmd/verify.in/verification.key");
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
    trycmd::TestCases::new().case("tests/cmd/*.md");
}
