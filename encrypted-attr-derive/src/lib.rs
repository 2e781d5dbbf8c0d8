//! The `#[derive(Encrypted)]` macro of `encrypted-attr`.
//!
//! Use it through the `encrypted-attr` crate, which re-exports it. The derive is
//! not implemented yet: applying it is a compile error that says so.

use proc_macro::TokenStream;

/// Marks a model whose `#[encrypted]` fields are stored as ciphertext.
///
/// Not implemented yet; applying it gives a compile error.
#[proc_macro_derive(Encrypted, attributes(encrypted))]
pub fn derive_encrypted(input: TokenStream) -> TokenStream {
    let input = proc_macro2::TokenStream::from(input);
    let message = "#[derive(Encrypted)] is not implemented yet in this version of encrypted-attr";
    let span = input
        .clone()
        .into_iter()
        .next()
        .map_or_else(proc_macro2::Span::call_site, |t| t.span());
    TokenStream::from(quote::quote_spanned! {span=> ::core::compile_error!(#message); })
}
