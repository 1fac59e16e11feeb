//! JSON integers as the OpenAPI document (JSON Schema 2020-12) counts them: any number without a
//! fractional part, so `5.0` is one. serde's integer types refuse `5.0`; body fields the document
//! calls integers read through these instead, so the schema and the handler agree.

use serde::de::{Error, Unexpected, Visitor};
use serde::{Deserialize, Deserializer};

/// `#[serde(deserialize_with = "crate::integer::i64")]`
pub fn i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer.deserialize_any(Integer)
}

/// `#[serde(default, deserialize_with = "crate::integer::option_i64")]`: `null` or absent is
/// `None`.
pub fn option_i64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Int(#[serde(deserialize_with = "i64")] i64);
    Option::<Int>::deserialize(deserializer).map(|value| value.map(|Int(n)| n))
}

struct Integer;

impl Visitor<'_> for Integer {
    type Value = i64;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an integer")
    }

    fn visit_i64<E: Error>(self, value: i64) -> Result<i64, E> {
        Ok(value)
    }

    fn visit_u64<E: Error>(self, value: u64) -> Result<i64, E> {
        i64::try_from(value).map_err(|_| E::invalid_value(Unexpected::Unsigned(value), &self))
    }

    fn visit_f64<E: Error>(self, value: f64) -> Result<i64, E> {
        // i64::MAX as f64 rounds up to 2^63, which is out of range: hence `<`.
        let integral = value.fract() == 0.0 && value >= i64::MIN as f64 && value < i64::MAX as f64;
        if integral {
            Ok(value as i64)
        } else {
            Err(E::invalid_value(Unexpected::Float(value), &self))
        }
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug)]
    struct Body {
        #[serde(deserialize_with = "super::i64")]
        n: i64,
        #[serde(default, deserialize_with = "super::option_i64")]
        m: Option<i64>,
    }

    fn parse(text: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn integral_numbers_are_integers_and_others_are_refused() {
        let body = parse(r#"{"n": 66195.0, "m": 7}"#).unwrap();
        assert_eq!((body.n, body.m), (66195, Some(7)));
        assert_eq!(parse(r#"{"n": -3, "m": null}"#).unwrap().m, None);
        assert_eq!(parse(r#"{"n": 1}"#).unwrap().m, None);
        for bad in [
            r#"{"n": 1.5}"#,
            r#"{"n": "1"}"#,
            r#"{"n": 9223372036854775808}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": 1, "m": 2.5}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
