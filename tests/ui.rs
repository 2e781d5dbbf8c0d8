//! Compile-fail tests of `#[derive(Encrypted)]`: each misuse is an error whose span
//! points at the user's code (committed `.stderr` files).

#[test]
fn misuse_is_a_spanned_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
}
