//! Parsing of `#[encrypted(…)]` attributes into plain values, with spans kept for
//! error messages. Unknown and repeated keys are errors.

use proc_macro2::Span;
use syn::parse::ParseStream;
use syn::{Attribute, LitStr, Meta, Path, Token};

/// A value read from an attribute, with the span of its key.
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

/// Collects errors so that all of them are reported at once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Sets `slot` once; a second time is a "duplicate" error.
pub(crate) fn set_once<T>(slot: &mut Option<Spanned<T>>, value: T, span: Span, key: &str, errors: &mut Errors) {
    if slot.is_some() {
        errors.at(span, format!("duplicate `{key}` attribute"));
    } else {
        *slot = Some(Spanned { value, span });
    }
}

/// `record(...)` or `record = path`.
pub(crate) enum RecordAttr {
    Generated {
        name: Option<LitStr>,
        derives: Vec<Path>,
        attrs: Vec<Meta>,
    },
    Existing(Path),
}

/// Container attributes.
#[derive(Default)]
pub(crate) struct ContainerAttrs {
    pub(crate) table: Option<Spanned<LitStr>>,
    pub(crate) id: Option<Spanned<LitStr>>,
    pub(crate) record: Option<Spanned<RecordAttr>>,
    pub(crate) krate: Option<Spanned<Path>>,
    /// A container attribute could not be parsed, so some settings (`crate`,
    /// `record`) may be missing.
    pub(crate) incomplete: bool,
}

/// The normaliser of a blind index.
pub(crate) enum Normalize {
    Builtin(&'static str),
    Function(Path),
}

/// Field attributes; `present` tells whether the field had `#[encrypted]` at all.
#[derive(Default)]
pub(crate) struct FieldAttrs {
    pub(crate) present: Option<Span>,
    pub(crate) key: Option<Spanned<LitStr>>,
    pub(crate) column: Option<Spanned<LitStr>>,
    pub(crate) convergent: Option<Spanned<()>>,
    pub(crate) json: Option<Spanned<()>>,
    pub(crate) blind_index: Option<Spanned<LitStr>>,
    pub(crate) normalize: Option<Spanned<Normalize>>,
    pub(crate) context: Option<Spanned<LitStr>>,
}

fn is_encrypted(attr: &Attribute) -> bool {
    attr.path().is_ident("encrypted")
}

/// Reads every `#[encrypted(…)]` on the struct.
pub(crate) fn container(attrs: &[Attribute], errors: &mut Errors) -> ContainerAttrs {
    let mut out = ContainerAttrs::default();
    for attr in attrs.iter().filter(|a| is_encrypted(a)) {
        let Meta::List(_) = &attr.meta else {
            errors.at(
                attr.path().segments[0].ident.span(),
                "expected `#[encrypted(table = \"…\", …)]` on the struct",
            );
            out.incomplete = true;
            continue;
        };
        let result = attr.parse_nested_meta(|meta| {
            let span = meta.path.span_of_first();
            if meta.path.is_ident("table") {
                set_once(&mut out.table, meta.value()?.parse()?, span, "table", errors);
            } else if meta.path.is_ident("id") {
                set_once(&mut out.id, meta.value()?.parse()?, span, "id", errors);
            } else if meta.path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                set_once(&mut out.krate, lit.parse()?, span, "crate", errors);
            } else if meta.path.is_ident("record") {
                let record = if meta.input.peek(Token![=]) {
                    RecordAttr::Existing(meta.value()?.parse()?)
                } else {
                    parse_record(&meta)?
                };
                set_once(&mut out.record, record, span, "record", errors);
            } else {
                errors.at(span, "unknown attribute; expected `table`, `id`, `record` or `crate`");
                skip_value(meta.input)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            out.incomplete = true;
            errors.push(e);
        }
    }
    out
}

fn parse_record(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<RecordAttr> {
    let mut name = None;
    let mut derives = Vec::new();
    let mut attrs = Vec::new();
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("name") {
            name = Some(inner.value()?.parse()?);
        } else if inner.path.is_ident("derive") {
            let content;
            syn::parenthesized!(content in inner.input);
            derives.extend(content.parse_terminated(Path::parse_mod_style, Token![,])?);
        } else if inner.path.is_ident("attr") {
            let content;
            syn::parenthesized!(content in inner.input);
            attrs.extend(content.parse_terminated(<Meta as syn::parse::Parse>::parse, Token![,])?);
        } else {
            return Err(inner.error("unknown record attribute; expected `name`, `derive` or `attr`"));
        }
        Ok(())
    })?;
    Ok(RecordAttr::Generated { name, derives, attrs })
}

/// Reads the `#[encrypted(…)]` on one field.
pub(crate) fn field(attrs: &[Attribute], errors: &mut Errors) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in attrs.iter().filter(|a| is_encrypted(a)) {
        let span = attr.path().segments[0].ident.span();
        if out.present.is_some() {
            errors.at(span, "duplicate `#[encrypted]` attribute on this field");
            continue;
        }
        out.present = Some(span);
        match &attr.meta {
            Meta::Path(_) => continue,
            Meta::List(_) => {}
            Meta::NameValue(_) => {
                errors.at(span, "expected `#[encrypted]` or `#[encrypted(…)]`");
                continue;
            }
        }
        let result = attr.parse_nested_meta(|meta| {
            let span = meta.path.span_of_first();
            if meta.path.is_ident("key") {
                set_once(&mut out.key, meta.value()?.parse()?, span, "key", errors);
            } else if meta.path.is_ident("column") {
                set_once(&mut out.column, meta.value()?.parse()?, span, "column", errors);
            } else if meta.path.is_ident("convergent") {
                set_once(&mut out.convergent, (), span, "convergent", errors);
            } else if meta.path.is_ident("json") {
                set_once(&mut out.json, (), span, "json", errors);
            } else if meta.path.is_ident("blind_index") {
                set_once(
                    &mut out.blind_index,
                    meta.value()?.parse()?,
                    span,
                    "blind_index",
                    errors,
                );
            } else if meta.path.is_ident("context") {
                set_once(&mut out.context, meta.value()?.parse()?, span, "context", errors);
            } else if meta.path.is_ident("normalize") {
                let lit: LitStr = meta.value()?.parse()?;
                let normalize = match lit.value().as_str() {
                    "lowercase" => Normalize::Builtin("lowercase"),
                    "trim" => Normalize::Builtin("trim"),
                    "digits" => Normalize::Builtin("digits"),
                    "exact" => Normalize::Builtin("exact"),
                    _ => Normalize::Function(lit.parse().map_err(|_| {
                        syn::Error::new(
                            lit.span(),
                            "expected `lowercase`, `trim`, `digits`, `exact` or the path of a `fn(&str) -> String`",
                        )
                    })?),
                };
                set_once(&mut out.normalize, normalize, span, "normalize", errors);
            } else {
                errors.at(
                    span,
                    "unknown attribute; expected `key`, `column`, `convergent`, `json`, `blind_index`, `normalize` or `context`",
                );
                skip_value(meta.input)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    out
}

/// Consumes `= value` or `(…)` after an unknown key, so parsing can go on.
fn skip_value(input: ParseStream<'_>) -> syn::Result<()> {
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        input.parse::<syn::Expr>()?;
    } else if input.peek(syn::token::Paren) {
        let _content;
        syn::parenthesized!(_content in input);
        let _: proc_macro2::TokenStream = _content.parse()?;
    }
    Ok(())
}

trait SpanOfFirst {
    fn span_of_first(&self) -> Span;
}

impl SpanOfFirst for Path {
    fn span_of_first(&self) -> Span {
        self.segments.first().map_or_else(Span::call_site, |s| s.ident.span())
    }
}
