//! The `#[derive(Encrypted)]` macro of `encrypted-attr`; use it through that crate,
//! which re-exports it and documents it in full.
//!
//! Pipeline: [`attr`] parses the `#[encrypted(…)]` attributes, [`ast`] builds the
//! model of the struct, [`valid`] checks it (every problem reported at once, spanned
//! at the user's code), [`expand`] writes the code. The entry point only dispatches
//! to [`derive`], which works on `proc_macro2` tokens so it can be tested directly.

mod ast;
mod attr;
mod expand;
mod valid;

use proc_macro::TokenStream;

/// Derives the record type and the encrypt/decrypt methods of a model. See the
/// `encrypted-attr` crate documentation for the attributes.
#[proc_macro_derive(Encrypted, attributes(encrypted))]
pub fn derive_encrypted(input: TokenStream) -> TokenStream {
    derive(input.into()).into()
}

/// The derive on `proc_macro2` tokens: the expansion, or compile errors.
fn derive(input: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let input = match syn::parse2::<syn::DeriveInput>(input) {
        Ok(input) => input,
        Err(error) => return error.to_compile_error(),
    };
    let mut errors = attr::Errors::default();
    let model = ast::Model::from_input(&input, &mut errors);
    valid::check(&model, &mut errors);
    let named_struct = matches!(
        &input.data,
        syn::Data::Struct(syn::DataStruct {
            fields: syn::Fields::Named(_),
            ..
        })
    );
    match errors.finish() {
        Ok(()) => expand::expand(&model),
        // The errors, and a stand-in for what they prevented, so that code using the
        // record reports nothing further.
        Err(errors) if named_struct && model.container_parsed => {
            let mut out = errors.to_compile_error();
            out.extend(expand::fallback(&model));
            out
        }
        Err(errors) => errors.to_compile_error(),
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::derive;

    fn expand(input: proc_macro2::TokenStream) -> String {
        derive(input).to_string()
    }

    #[test]
    fn expands_a_model_with_every_kind_of_field() {
        let out = expand(quote! {
            #[encrypted(table = "users", id = "id")]
            #[encrypted(record(name = "UserRow", derive(Debug), attr(doc = "row")))]
            pub struct User {
                pub id: i64,
                pub name: String,
                #[encrypted]
                pub ssn: String,
                #[encrypted(convergent, key = "emails")]
                pub email: String,
                #[encrypted(blind_index = "phone_bidx", normalize = "digits")]
                pub phone: Option<String>,
                #[encrypted(json, column = "medical_ct")]
                pub medical: Vec<u32>,
            }
        });
        assert!(out.contains("pub struct UserRow"), "{out}");
        assert!(out.contains("medical_ct"), "{out}");
        assert!(out.contains("phone_bidx"), "{out}");
        assert!(out.contains("\"emails\""), "{out}");
        assert!(out.contains("\"users_ssn\""), "{out}");
        assert!(out.contains("fn email_lookup"), "{out}");
        assert!(out.contains("fn phone_index"), "{out}");
        assert!(out.contains("fn encrypt_ssn"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn reports_every_error_at_once() {
        let out = expand(quote! {
            #[encrypted(tabel = "x")]
            struct M {
                #[encrypted(convergent, json)]
                a: String,
                #[encrypted(key = "a", key = "b")]
                b: String,
            }
        });
        assert_eq!(out.matches("compile_error").count(), 3, "{out}");
    }

    #[test]
    fn never_panics_on_odd_input() {
        for input in [
            quote! { struct T(u8); },
            quote! { enum E { A } },
            quote! { struct N { a: u8 } },
            quote! { #[encrypted] struct N { #[encrypted] a: String } },
            quote! { struct N { #[encrypted = "x"] a: String } },
            quote! { struct N<T> { #[encrypted] a: T } },
            quote! { #[encrypted(id = "nope")] struct N { #[encrypted] a: String } },
        ] {
            assert!(expand(input).contains("compile_error"));
        }
    }
}
