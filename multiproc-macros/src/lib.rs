//! `#[process]`: turns a function into one that returns an unstarted CSP
//! process (PyCSP's `@process`). Use it through `multiproc::csp::process`.

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::{FnArg, ItemFn, Pat, ReturnType, parse_macro_input};

/// Turns `fn name(args) -> R { body }` into `fn name(args) -> Process<..>`:
/// calling it captures the arguments and starts nothing (as PyCSP's
/// `P(args)`); `Parallel`, `parallel!` or `.run()` start it, in a thread, or
/// in an OS process after `.os()`.
///
/// When the body returns `Err(e)` with `e.is_poisoned()`, every channel end
/// among the arguments (directly, or in a `Vec` or `Option`) is poisoned, so
/// that a network shuts down from one poison; ends are retired when dropped
/// anyway. (The argument ends the body drops retire only once its result is
/// known, so that its own ends retiring as it returns cannot retire a
/// channel before its poison reaches it; ends it retires explicitly retire at
/// once.)
///
/// An `async fn` becomes a light process ([`Light`](../multiproc/csp/struct.Light.html)):
/// its body runs as a task on the process's light scheduler, using the
/// `_async` methods of channel ends.
///
/// See `multiproc::csp` for examples.
#[proc_macro_attribute]
pub fn process(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return syn::Error::new(proc_macro2::Span::call_site(), "#[process] takes no arguments")
            .to_compile_error()
            .into();
    }
    let function = parse_macro_input!(item as ItemFn);
    match expand(function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

fn expand(function: ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let ItemFn { attrs, vis, sig, block } = function;
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(&sig, "#[process] functions cannot be generic (yet)"));
    }
    let name = &sig.ident;
    let mut idents = Vec::new();
    let mut types = Vec::new();
    for input in &sig.inputs {
        let FnArg::Typed(typed) = input else {
            return Err(syn::Error::new_spanned(input, "#[process] functions take no `self`"));
        };
        let Pat::Ident(pat) = &*typed.pat else {
            return Err(syn::Error::new_spanned(
                &typed.pat,
                "#[process] arguments must be plain names",
            ));
        };
        idents.push(pat.ident.clone());
        types.push((*typed.ty).clone());
    }
    let result = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    let inputs = &sig.inputs;
    let body_fn = format_ident!("__{}_body", name);
    let csp = quote!(::multiproc::csp);
    // The argument ends, held (registered) until the result is known.
    let collect_ends = quote! {
        #[allow(unused_mut)]
        let mut __ends: #csp::__private::Held = ::std::vec::Vec::new();
        {
            #[allow(unused_imports)]
            use #csp::__private::{CollectEnds as _, NoEnds as _};
            #((&#csp::__private::Probe(&#idents)).collect_ends(&mut __ends);)*
        }
    };
    // A poisoned result poisons every argument end.
    let poison_ends = quote! {
        {
            #[allow(unused_imports)]
            use #csp::__private::{NotResult as _, PoisonResult as _};
            if (&#csp::__private::Probe(&__result)).is_poison() {
                for end in &__ends {
                    end.poison();
                }
            }
        }
    };
    if sig.asyncness.is_some() {
        // A light process: the body runs as a task on the scheduler.
        return Ok(quote! {
            #(#attrs)*
            #vis fn #name(#(#idents: #types),*) -> #csp::Light<#result> {
                async fn #body_fn(#inputs) -> #result #block

                #collect_ends
                #csp::Light::new(async move {
                    let __result = #body_fn(#(#idents),*).await;
                    #poison_ends
                    // The argument ends retire once the result is known
                    // (after any poison spread), as for thread processes.
                    drop(__ends);
                    __result
                })
                .name(stringify!(#name))
            }
        });
    }
    Ok(quote! {
        #(#attrs)*
        #[allow(clippy::type_complexity)]
        #vis fn #name(#(#idents: #types),*) -> #csp::Process<
            impl Fn((#(#types,)*)) -> #result + Copy + Send + 'static,
            (#(#types,)*),
            #result,
        > {
            fn #body_fn(#inputs) -> #result #block

            fn __run(__args: (#(#types,)*)) -> #result {
                let (#(#idents,)*) = __args;
                let __deferred = #csp::__private::Deferred::begin();
                #collect_ends
                let __result = #body_fn(#(#idents),*);
                #poison_ends
                // The argument ends the body dropped retire now (after any
                // poison spread); then the processes this one spawned end
                // with it. A failure among them is this process's failure
                // (never silently lost).
                drop(__ends);
                drop(__deferred);
                if let ::std::result::Result::Err(e) = #csp::join_spawned() {
                    panic!("a process spawned by this one failed: {e}");
                }
                __result
            }

            #csp::Process::new(__run, (#(#idents,)*))
        }
    })
}
