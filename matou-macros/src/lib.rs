//! `#[matou::main]` and `#[matou::test]`: an `async fn` run on matou's Unix
//! runtime (`matou::builder()`), with the worker count and idle spin given as
//! arguments. Use them through the `matou` facade.
//!
//! Both rewrite `async fn f() -> T { body }` into `fn f() -> T {
//! matou::builder()...run(async move { body }) }`. The run's own checks
//! stay: a task that forgets a child fails with `StillHasChildren`; when
//! that reaches the main future (or the main future forgets one), `run`
//! raises it as a panic naming the spawn sites, so under `#[matou::test]` it
//! is a failing test with that message.
//!
//! Arguments (all optional, `name = integer`):
//! - `extra_workers`: workers besides dom0 (default: one per CPU beyond the
//!   first);
//! - `idle_spin_us`: the idle spin, in microseconds (default: the runtime's).

use proc_macro::TokenStream;
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ItemFn, Lit, MetaNameValue, Token};

/// Runs an `async fn main` on matou's Unix runtime.
///
/// ```ignore
/// #[matou::main(extra_workers = 1, idle_spin_us = 0)]
/// async fn main() {
///     let v = matou::spawn(async { 1 + 1 }).await.unwrap();
///     assert_eq!(v, 2);
/// }
/// ```
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args, item, Kind::Main).unwrap_or_else(|e| e.to_compile_error().into())
}

/// Runs an `async fn` test on matou's Unix runtime; a panic, or a run aborted
/// by `StillHasChildren` (which names the spawn sites), fails the test.
///
/// ```ignore
/// #[matou::test(extra_workers = 2)]
/// async fn adds() {
///     assert_eq!(matou::spawn(async { 2 }).await.unwrap(), 2);
/// }
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args, item, Kind::Test).unwrap_or_else(|e| e.to_compile_error().into())
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Main,
    Test,
}

/// The runtime settings given as the attribute's arguments.
#[derive(Default)]
struct Settings {
    extra_workers: Option<syn::LitInt>,
    idle_spin_us: Option<syn::LitInt>,
}

fn parse_settings(args: TokenStream) -> syn::Result<Settings> {
    let pairs = Punctuated::<MetaNameValue, Token![,]>::parse_terminated.parse(args)?;
    let mut settings = Settings::default();
    for pair in pairs {
        let name = pair
            .path
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        let value = match &pair.value {
            Expr::Lit(ExprLit {
                lit: Lit::Int(n), ..
            }) => n.clone(),
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    format!("`{name}` takes an integer literal"),
                ))
            }
        };
        let slot = match name.as_str() {
            "extra_workers" => &mut settings.extra_workers,
            "idle_spin_us" => &mut settings.idle_spin_us,
            _ => {
                return Err(syn::Error::new(
                    pair.path.span(),
                    "unknown argument: expected `extra_workers` or `idle_spin_us`",
                ))
            }
        };
        if slot.replace(value).is_some() {
            return Err(syn::Error::new(
                pair.path.span(),
                format!("`{name}` given twice"),
            ));
        }
    }
    Ok(settings)
}

fn expand(args: TokenStream, item: TokenStream, kind: Kind) -> syn::Result<TokenStream> {
    let settings = parse_settings(args)?;
    let mut func: ItemFn = syn::parse(item)?;
    if func.sig.asyncness.take().is_none() {
        return Err(syn::Error::new(
            func.sig.fn_token.span(),
            "the function must be `async fn`",
        ));
    }
    if !func.sig.inputs.is_empty() {
        return Err(syn::Error::new(
            func.sig.inputs.span(),
            "the function takes no arguments",
        ));
    }
    if kind == Kind::Main && func.sig.ident != "main" {
        return Err(syn::Error::new(
            func.sig.ident.span(),
            "#[matou::main] goes on `async fn main`",
        ));
    }
    let span = func.sig.ident.span();
    let mut builder = quote_spanned!(span=> ::matou::builder());
    if let Some(n) = settings.extra_workers {
        builder = quote_spanned!(span=> #builder.extra_workers(#n));
    }
    if let Some(us) = settings.idle_spin_us {
        builder =
            quote_spanned!(span=> #builder.idle_spin(::std::time::Duration::from_micros(#us)));
    }
    let body = &func.block;
    // The run's `#[track_caller]` then names the annotated function.
    let block = quote_spanned!(span=> { #builder.run(async move #body) });
    func.block = syn::parse2(block)?;
    let test_attr = match kind {
        Kind::Test => quote!(#[::core::prelude::v1::test]),
        Kind::Main => quote!(),
    };
    Ok(quote!(#test_attr #func).into())
}
