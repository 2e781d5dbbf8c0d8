//! Checks of the model that parsing cannot express; every problem is reported, each
//! at the user's attribute or field.

use crate::ast::Model;
use crate::attr::Errors;

/// Validates `model`.
pub(crate) fn check(model: &Model, errors: &mut Errors) {
    if !model.generics.params.is_empty() {
        errors.at(
            model.ident.span(),
            "#[derive(Encrypted)] does not support generic structs",
        );
    }
    if model.encrypted().next().is_none() {
        errors.at(
            model.ident.span(),
            "no field is marked #[encrypted]; mark the fields to store as ciphertext",
        );
    }
    if let Some(id) = &model.id {
        match model.id_field() {
            None => errors.at(
                id.value.span(),
                format!("no field named `{}` to use as the row id", id.value.value()),
            ),
            Some(field) if field.encrypted.is_some() => {
                errors.at(id.value.span(), "the row id must be a plain (not encrypted) field")
            }
            Some(_) => {}
        }
    }
    let mut columns = std::collections::HashSet::new();
    for field in &model.fields {
        if field.encrypted.is_none() {
            columns.insert(field.ident.to_string());
        }
    }
    for (_, field, enc) in model.encrypted() {
        if let (Some(_), Some(json)) = (enc.convergent, enc.json) {
            errors.at(
                json,
                "`convergent` cannot be combined with `json`: JSON encodings of equal values may differ, which breaks equality lookups",
            );
        }
        if let (Some(_), Some(bidx)) = (enc.convergent, &enc.blind_index) {
            errors.at(
                bidx.span,
                "a `convergent` field is searchable already; `blind_index` is for random fields",
            );
        }
        if let (Some(normalize), None) = (&enc.normalize, &enc.blind_index) {
            errors.at(
                normalize.span,
                "`normalize` applies to a `blind_index`; add `blind_index = \"<column>\"`",
            );
        }
        if let (Some(normalize), Some(json)) = (&enc.normalize, enc.json) {
            let _ = json;
            errors.at(normalize.span, "`normalize` works on strings, not on `json` fields");
        }
        if !columns.insert(enc.column.to_string()) {
            errors.at(enc.span, format!("column `{}` is used twice", enc.column));
        }
        if let Some(bidx) = &enc.blind_index {
            let name = bidx.value.value();
            if syn::parse_str::<syn::Ident>(&name).is_err() {
                errors.at(
                    bidx.value.span(),
                    "`blind_index` must name a column that is a valid Rust identifier",
                );
            } else if !columns.insert(name.clone()) {
                errors.at(bidx.value.span(), format!("column `{name}` is used twice"));
            }
        }
        // Key names are checked by the expansion with the library's own rule
        // (`key_name_problem`, evaluated at compile time), so the two cannot drift.
        if let Some(context) = &enc.context {
            match model.context_field(enc) {
                None => errors.at(
                    context.value.span(),
                    format!(
                        "no field named `{}` to derive this field's key from",
                        context.value.value()
                    ),
                ),
                Some(f) if f.encrypted.is_some() => errors.at(
                    context.value.span(),
                    "the `context` field must be a plain (not encrypted) field: its value selects the key",
                ),
                Some(f) if is_option(&f.ty) => errors.at(
                    context.value.span(),
                    "the `context` field cannot be an `Option`: every row needs a tenant to derive its key",
                ),
                Some(_) => {}
            }
        }
        let _ = field;
    }
}

/// Whether `ty` is spelled `Option<…>` (any path ending in `Option`).
fn is_option(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Option"))
}
