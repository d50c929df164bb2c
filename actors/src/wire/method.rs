//! One JSON-RPC method is one type: its wire name, its positional parameters and its result.
//! The worker's client, the manager's dispatcher, the manager's client of the worker and the
//! worker's management server all go through it, so a method's shape is written once.
//!
//! Parameters are a tuple (a JSON array on the wire) with exactly the count and order of
//! damocles v0.13.1's Go or Rust signature: go-jsonrpc refuses a call whose count differs
//! (`-32602 wrong param count`), and so do we. Our extensions never ride as extra parameters;
//! they travel in HTTP headers (`wire::auth`).

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::jsonrpc::RpcError;

/// A JSON-RPC method of one of the two APIs (`Venus.*`, `VenusWorker.*`).
pub trait Method {
    /// The wire name, namespace included (`Venus.AllocateSector`).
    const NAME: &'static str;
    /// The names of the positional parameters, in order: their count is the method's arity.
    const PARAMS: &'static [&'static str];
    /// A tuple of the parameters (`[(); 0]` when there are none: it is `[]` on the wire).
    type Params: Serialize + DeserializeOwned + Send + 'static;
    /// What the method answers.
    type Output: Serialize + DeserializeOwned + Send + 'static;
}

/// The parameters of a method that takes none: `[]` on the wire.
pub type NoParams = [(); 0];

/// Declares a method type. `Name = "Ns.Name" (param: Type, ...) -> Output`.
macro_rules! method {
    ($(#[$doc:meta])* $ty:ident = $name:literal () -> $out:ty) => {
        #[doc = concat!("The `", $name, "` method.")]
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $ty;
        impl $crate::wire::method::Method for $ty {
            const NAME: &'static str = $name;
            const PARAMS: &'static [&'static str] = &[];
            type Params = $crate::wire::method::NoParams;
            type Output = $out;
        }
    };
    ($(#[$doc:meta])* $ty:ident = $name:literal ($($p:ident: $pt:ty),+) -> $out:ty) => {
        #[doc = concat!("The `", $name, "` method.")]
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $ty;
        impl $crate::wire::method::Method for $ty {
            const NAME: &'static str = $name;
            const PARAMS: &'static [&'static str] = &[$(stringify!($p)),+];
            type Params = ($($pt,)+);
            type Output = $out;
        }
    };
}
pub(crate) use method;

/// Decodes the positional parameters of `M` from the request's raw text, straight into their
/// types. A missing or `null` `params` counts as `[]`; a count other than `M`'s is refused the
/// way go-jsonrpc refuses it, naming the expected parameters.
pub fn decode_params<M: Method>(params: Option<&RawValue>) -> Result<M::Params, RpcError> {
    let text = params.map(RawValue::get).unwrap_or("[]");
    let text = if text.trim() == "null" { "[]" } else { text };
    // Counted without building anything: each element is skipped.
    let Ok(given) = serde_json::from_str::<Vec<IgnoredAny>>(text).map(|v| v.len()) else {
        return Err(RpcError::invalid_params(format!(
            "{}: params must be a positional array [{}]",
            M::NAME,
            M::PARAMS.join(", ")
        )));
    };
    if given != M::PARAMS.len() {
        return Err(RpcError::invalid_params(format!(
            "wrong param count (method '{}'): {given} != {}; expected [{}]",
            M::NAME,
            M::PARAMS.len(),
            M::PARAMS.join(", ")
        )));
    }
    serde_json::from_str(text).map_err(|e| {
        RpcError::invalid_params(format!(
            "{}: bad parameters: {e}; expected [{}]",
            M::NAME,
            M::PARAMS.join(", ")
        ))
    })
}

/// Serves one call of `M`: decodes its parameters, runs `f`, encodes its result.
pub async fn serve<M: Method, F, Fut>(params: Option<&RawValue>, f: F) -> Result<Value, RpcError>
where
    F: FnOnce(M::Params) -> Fut,
    Fut: std::future::Future<Output = Result<M::Output, RpcError>>,
{
    let out = f(decode_params::<M>(params)?).await?;
    encode_output::<M>(&out)
}

/// Raw parameters from a JSON value, for tests that hold parameters as values.
#[cfg(test)]
pub fn raw(params: &Value) -> Box<RawValue> {
    RawValue::from_string(params.to_string()).unwrap_or_else(|e| panic!("{e}"))
}

/// `M`'s wire name and arity, for the tables' lists of their methods.
pub const fn arity<M: Method>() -> (&'static str, usize) {
    (M::NAME, M::PARAMS.len())
}

/// Encodes a method's result for the response.
pub fn encode_output<M: Method>(out: &M::Output) -> Result<Value, RpcError> {
    serde_json::to_value(out).map_err(|e| {
        RpcError::new(
            super::jsonrpc::SERVER_ERROR,
            format!("{}: cannot encode the result: {e}", M::NAME),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    method!(
        /// Two parameters.
        Pair = "Test.Pair" (a: u32, b: Option<String>) -> bool
    );
    method!(
        /// None.
        Nothing = "Test.Nothing" () -> String
    );

    #[test]
    fn counts_are_exact_and_errors_name_the_parameters() {
        type Want = Result<(u32, Option<String>), &'static str>;
        let cases: [(Value, Want); 6] = [
            (json!([1, "x"]), Ok((1, Some("x".into())))),
            (json!([1, null]), Ok((1, None))),
            (
                json!([1]),
                Err("wrong param count (method 'Test.Pair'): 1 != 2; expected [a, b]"),
            ),
            (json!([1, null, 3]), Err("3 != 2")),
            (json!({"a": 1}), Err("must be a positional array [a, b]")),
            (json!(["one", null]), Err("bad parameters")),
        ];
        for (params, want) in cases {
            let got = decode_params::<Pair>(Some(&raw(&params)));
            match (got, want) {
                (Ok(v), Ok(w)) => assert_eq!(v, w, "{params}"),
                (Err(e), Err(w)) => {
                    assert_eq!(e.code, super::super::jsonrpc::INVALID_PARAMS);
                    assert!(e.message.contains(w), "{params}: {}", e.message);
                }
                (got, want) => panic!("{params}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn no_params_is_an_empty_array_both_ways() {
        let p: NoParams = [];
        assert_eq!(serde_json::to_value(p).ok(), Some(json!([])));
        assert!(decode_params::<Nothing>(None).is_ok());
        assert!(decode_params::<Nothing>(Some(&raw(&Value::Null))).is_ok());
        assert!(decode_params::<Nothing>(Some(&raw(&json!([])))).is_ok());
        assert!(decode_params::<Nothing>(Some(&raw(&json!([1])))).is_err());
        assert_eq!(Nothing::PARAMS.len(), 0);
    }
}
