//! The derive's model of the user's struct: plain fields, encrypted fields with
//! their storage, and the container settings, with defaults applied.

use proc_macro2::Span;
use syn::{DeriveInput, Ident, LitStr, Meta, Path, Type, Visibility};

use crate::attr::{self, Errors, Normalize, RecordAttr, Spanned};

/// One field of the struct.
pub(crate) struct Field {
    pub(crate) ident: Ident,
    pub(crate) vis: Visibility,
    pub(crate) ty: Type,
    /// The field's `#[doc]` attributes, copied onto the record's plain fields.
    pub(crate) docs: Vec<syn::Attribute>,
    /// `Some` when the field has `#[encrypted]`.
    pub(crate) encrypted: Option<Encrypted>,
}

/// How an encrypted field is stored.
pub(crate) struct Encrypted {
    /// Span of the `encrypted` attribute (for errors about the field as a whole).
    pub(crate) span: Span,
    pub(crate) key: String,
    pub(crate) column: Ident,
    pub(crate) convergent: Option<Span>,
    pub(crate) json: Option<Span>,
    pub(crate) blind_index: Option<Spanned<LitStr>>,
    pub(crate) normalize: Option<Spanned<Normalize>>,
    /// The plain field whose value derives this field's key (per-tenant keys).
    pub(crate) context: Option<Spanned<LitStr>>,
    /// `T` when the field is `Option<T>`.
    pub(crate) option_inner: Option<Type>,
}

impl Encrypted {
    /// The type stored (without the `Option`).
    pub(crate) fn inner<'a>(&'a self, field: &'a Field) -> &'a Type {
        self.option_inner.as_ref().unwrap_or(&field.ty)
    }
}

/// The record: generated, or an existing type.
pub(crate) enum Record {
    Generated {
        name: Ident,
        derives: Vec<Path>,
        attrs: Vec<Meta>,
    },
    Existing(Path),
}

/// The whole struct.
pub(crate) struct Model {
    pub(crate) ident: Ident,
    pub(crate) vis: Visibility,
    pub(crate) generics: syn::Generics,
    pub(crate) table: String,
    pub(crate) id: Option<Spanned<LitStr>>,
    pub(crate) record: Record,
    pub(crate) krate: Path,
    pub(crate) fields: Vec<Field>,
    /// Every container attribute was parsed (a stand-in on error may rely on them).
    pub(crate) container_parsed: bool,
}

impl Model {
    /// Builds the model, reporting every attribute problem at once.
    pub(crate) fn from_input(input: &DeriveInput, errors: &mut Errors) -> Self {
        let container = attr::container(&input.attrs, errors);
        let container_parsed = !container.incomplete;
        let named = match &input.data {
            syn::Data::Struct(syn::DataStruct {
                fields: syn::Fields::Named(named),
                ..
            }) => Some(named),
            syn::Data::Struct(_) => {
                errors.at(
                    input.ident.span(),
                    "#[derive(Encrypted)] needs a struct with named fields",
                );
                None
            }
            _ => {
                errors.at(input.ident.span(), "#[derive(Encrypted)] works on structs only");
                None
            }
        };
        let table = container
            .table
            .as_ref()
            .map_or_else(|| snake_case(&input.ident.to_string()), |t| t.value.value());
        let mut fields = Vec::new();
        for field in named.map(|n| n.named.iter()).into_iter().flatten() {
            let Some(ident) = field.ident.clone() else {
                continue;
            };
            let attrs = attr::field(&field.attrs, errors);
            let encrypted = attrs.present.map(|span| {
                let column = match &attrs.column {
                    Some(c) => syn::parse_str::<Ident>(&c.value.value()).unwrap_or_else(|_| {
                        errors.at(
                            c.span,
                            "`column` must be a valid Rust identifier (the record's field name)",
                        );
                        ident.clone()
                    }),
                    None => ident.clone(),
                };
                Encrypted {
                    span,
                    key: attrs
                        .key
                        .as_ref()
                        .map_or_else(|| format!("{table}_{ident}"), |k| k.value.value()),
                    column,
                    convergent: attrs.convergent.as_ref().map(|c| c.span),
                    json: attrs.json.as_ref().map(|j| j.span),
                    blind_index: attrs.blind_index,
                    normalize: attrs.normalize,
                    context: attrs.context,
                    option_inner: option_inner(&field.ty),
                }
            });
            fields.push(Field {
                ident,
                vis: field.vis.clone(),
                ty: field.ty.clone(),
                docs: field
                    .attrs
                    .iter()
                    .filter(|a| a.path().is_ident("doc"))
                    .cloned()
                    .collect(),
                encrypted,
            });
        }
        let record = match container.record.map(|r| r.value) {
            Some(RecordAttr::Existing(path)) => Record::Existing(path),
            Some(RecordAttr::Generated { name, derives, attrs }) => Record::Generated {
                name: record_name(&input.ident, name.as_ref(), errors),
                derives,
                attrs,
            },
            None => Record::Generated {
                name: record_name(&input.ident, None, errors),
                derives: Vec::new(),
                attrs: Vec::new(),
            },
        };
        Self {
            ident: input.ident.clone(),
            vis: input.vis.clone(),
            generics: input.generics.clone(),
            table,
            id: container.id,
            record,
            krate: container
                .krate
                .map_or_else(|| syn::parse_quote!(::encrypted_attr), |k| k.value),
            fields,
            container_parsed,
        }
    }

    /// The field named by `id`, if any.
    pub(crate) fn id_field(&self) -> Option<&Field> {
        let id = self.id.as_ref()?.value.value();
        self.fields.iter().find(|f| f.ident == id)
    }

    /// The plain field named by an encrypted field's `context`, if any.
    pub(crate) fn context_field(&self, enc: &Encrypted) -> Option<&Field> {
        let name = enc.context.as_ref()?.value.value();
        self.fields.iter().find(|f| f.ident == name)
    }

    /// Encrypted fields with their index in the runtime spec.
    pub(crate) fn encrypted(&self) -> impl Iterator<Item = (usize, &Field, &Encrypted)> {
        self.fields
            .iter()
            .filter_map(|f| f.encrypted.as_ref().map(|e| (f, e)))
            .enumerate()
            .map(|(i, (f, e))| (i, f, e))
    }
}

fn record_name(model: &Ident, name: Option<&LitStr>, errors: &mut Errors) -> Ident {
    match name {
        Some(lit) => syn::parse_str::<Ident>(&lit.value()).unwrap_or_else(|_| {
            errors.at(lit.span(), "the record name must be a valid Rust identifier");
            Ident::new(&format!("{model}Record"), lit.span())
        }),
        None => Ident::new(&format!("{model}Record"), model.span()),
    }
}

/// `T` for a type spelled `Option<T>` (or `std::option::Option<T>`).
fn option_inner(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        syn::GenericArgument::Type(inner) if args.args.len() == 1 => Some(inner.clone()),
        _ => None,
    }
}

/// `UserAccount` → `user_account`.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
