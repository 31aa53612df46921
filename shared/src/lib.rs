//! The vocabulary shared by every InterBank process and by the browser app.
//!
//! Architecture Invariant: this crate builds for `wasm32-unknown-unknown`; it has no
//! runtime, network or storage dependency (checked by `.ci/run`, which builds it for wasm32).
//!
//! Every type here is *parsed* at the edge (`FromStr` / `Deserialize`) and is valid from then
//! on: a `Money` never has three decimals, an `Ibk` never names bank 0, a `Document` always has
//! correct check digits.

pub mod api;
pub mod cli;
pub mod document;
pub mod error;
pub mod ids;
pub mod money;
pub mod pix;
pub mod roundtrip;

pub use document::{Document, DocumentError};
pub use error::{ErrorBody, ErrorCode};
pub use ids::{AccountId, BankId, BusinessId, Ibk, IdError};
pub use money::{Amount, Money, MoneyError};
pub use pix::{KeyType, PixKey, Target};

/// OpenAPI schemas of the types that travel as strings (or numbers) with their own grammar.
#[cfg(feature = "openapi")]
mod openapi {
    use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
    use utoipa::openapi::{OneOfBuilder, RefOr};
    use utoipa::{PartialSchema, ToSchema};

    fn string(description: &str, pattern: Option<&str>, example: &str) -> RefOr<Schema> {
        let mut b = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .description(Some(description))
            .examples([serde_json::Value::String(example.into())]);
        if let Some(p) = pattern {
            b = b.pattern(Some(p));
        }
        RefOr::T(Schema::Object(b.build()))
    }

    macro_rules! string_schema {
        ($t:ty, $name:literal, $desc:literal, $pattern:expr, $example:literal) => {
            impl PartialSchema for $t {
                fn schema() -> RefOr<Schema> {
                    string($desc, $pattern, $example)
                }
            }
            impl ToSchema for $t {
                fn name() -> std::borrow::Cow<'static, str> {
                    std::borrow::Cow::Borrowed($name)
                }
            }
        };
    }

    string_schema!(
        crate::Ibk,
        "Ibk",
        "An account in the network: \"{bank}-{account}\"",
        Some("^[0-9]+-[0-9]+$"),
        "1-42"
    );
    string_schema!(
        crate::Document,
        "Document",
        "A CPF (11 digits) or CNPJ (14 digits), punctuation allowed, check digits verified",
        None,
        "529.982.247-25"
    );
    string_schema!(
        crate::PixKey,
        "PixKey",
        "A Pix key: CPF, CNPJ, e-mail, +phone or UUID (canonical form)",
        None,
        "maria@example.com"
    );
    string_schema!(crate::Target, "Target", "An IBK or a Pix key", None, "2-7");

    fn money(description: &str) -> RefOr<Schema> {
        let s = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .pattern(Some("^[0-9]+(\\.[0-9]{1,2})?$"))
            .examples([serde_json::Value::String("1234.56".into())])
            .build();
        let n = ObjectBuilder::new().schema_type(SchemaType::Type(Type::Number)).build();
        RefOr::T(Schema::OneOf(OneOfBuilder::new().item(s).item(n).description(Some(description)).build()))
    }

    impl PartialSchema for crate::Money {
        fn schema() -> RefOr<Schema> {
            money("Money: at most two decimal places, never negative; answered as a decimal string")
        }
    }
    impl ToSchema for crate::Money {}
    impl PartialSchema for crate::Amount {
        fn schema() -> RefOr<Schema> {
            money("A positive amount of money, at most two decimal places (a JSON number or string)")
        }
    }
    impl ToSchema for crate::Amount {}

    macro_rules! id_schema {
        ($t:ty) => {
            impl PartialSchema for $t {
                fn schema() -> RefOr<Schema> {
                    u64::schema()
                }
            }
            impl ToSchema for $t {}
        };
    }
    id_schema!(crate::AccountId);
    id_schema!(crate::BankId);
    id_schema!(crate::BusinessId);
}
