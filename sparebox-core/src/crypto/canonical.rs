//! The canonical byte encoding that signatures and sealed secrets are computed over.
//!
//! Every variable-length item is preceded by its length as a big-endian `u64`, so no
//! two different inputs encode to the same bytes and nothing depends on JSON spacing or
//! key order. JSON values are encoded with a type tag per node and object keys sorted.

use std::collections::BTreeMap;

use serde_json::Value;
use zeroize::Zeroizing;

use crate::Secret;

/// Where encoded bytes go: a buffer, a MAC, or a counter.
pub(crate) trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Counts bytes without keeping them, to check a size limit before doing any work.
#[derive(Debug, Default)]
pub(crate) struct Counter(pub u64);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 = self.0.saturating_add(bytes.len() as u64);
    }
}

/// Writes a length as eight big-endian bytes.
pub(crate) fn put_len(sink: &mut impl Sink, len: usize) {
    sink.put(&(len as u64).to_be_bytes());
}

/// Writes `bytes` preceded by their length.
pub(crate) fn put_bytes(sink: &mut impl Sink, bytes: &[u8]) {
    put_len(sink, bytes.len());
    sink.put(bytes);
}

/// Writes a JSON value: one tag byte, then the value's own encoding.
pub(crate) fn put_json(sink: &mut impl Sink, value: &Value) {
    match value {
        Value::Null => sink.put(&[0]),
        Value::Bool(false) => sink.put(&[1]),
        Value::Bool(true) => sink.put(&[2]),
        Value::Number(number) => {
            sink.put(&[3]);
            put_bytes(sink, number.to_string().as_bytes());
        }
        Value::String(text) => {
            sink.put(&[4]);
            put_bytes(sink, text.as_bytes());
        }
        Value::Array(items) => {
            sink.put(&[5]);
            put_len(sink, items.len());
            items.iter().for_each(|item| put_json(sink, item));
        }
        Value::Object(map) => {
            sink.put(&[6]);
            put_len(sink, map.len());
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (key, item) in entries {
                put_bytes(sink, key.as_bytes());
                put_json(sink, item);
            }
        }
    }
}

/// Encodes a map of named secrets into a buffer of exactly the right size (so no
/// reallocation leaves a copy behind), zeroed when dropped.
pub(crate) fn encode_secrets(secrets: &BTreeMap<String, Secret>) -> Zeroizing<Vec<u8>> {
    let size = 8 + secrets
        .iter()
        .map(|(name, value)| 16 + name.len() + value.expose().len())
        .sum::<usize>();
    let mut out = Zeroizing::new(Vec::with_capacity(size));
    put_len(&mut *out, secrets.len());
    for (name, value) in secrets {
        put_bytes(&mut *out, name.as_bytes());
        put_bytes(&mut *out, value.expose().as_bytes());
    }
    out
}

/// Why [`decode_secrets`] failed. Carries no secret bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MalformedSecrets;

/// Decodes what [`encode_secrets`] wrote.
pub(crate) fn decode_secrets(
    mut input: &[u8],
) -> Result<BTreeMap<String, Secret>, MalformedSecrets> {
    let count = take_len(&mut input)?;
    let mut secrets = BTreeMap::new();
    for _ in 0..count {
        let name = take_str(&mut input)?;
        let value = take_str(&mut input)?;
        if secrets.insert(name, Secret::new(value)).is_some() {
            return Err(MalformedSecrets);
        }
    }
    if !input.is_empty() {
        return Err(MalformedSecrets);
    }
    Ok(secrets)
}

fn take_len(input: &mut &[u8]) -> Result<usize, MalformedSecrets> {
    let (head, rest) = input.split_first_chunk::<8>().ok_or(MalformedSecrets)?;
    *input = rest;
    usize::try_from(u64::from_be_bytes(*head)).map_err(|_| MalformedSecrets)
}

fn take_str(input: &mut &[u8]) -> Result<String, MalformedSecrets> {
    let len = take_len(input)?;
    if len > input.len() {
        return Err(MalformedSecrets);
    }
    let (bytes, rest) = input.split_at(len);
    *input = rest;
    let text = std::str::from_utf8(bytes).map_err(|_| MalformedSecrets)?;
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_are_encoded_in_sorted_order() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":[true,null,"x"]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{ "a": [true, null, "x"], "b": 1 }"#).unwrap();
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        put_json(&mut ea, &a);
        put_json(&mut eb, &b);
        assert_eq!(ea, eb);
    }

    #[test]
    fn length_prefixes_keep_neighbouring_fields_apart() {
        let (mut ab_c, mut a_bc) = (Vec::new(), Vec::new());
        put_bytes(&mut ab_c, b"ab");
        put_bytes(&mut ab_c, b"c");
        put_bytes(&mut a_bc, b"a");
        put_bytes(&mut a_bc, b"bc");
        assert_ne!(ab_c, a_bc);
    }

    #[test]
    fn secrets_round_trip_and_fill_their_buffer_exactly() {
        let secrets = BTreeMap::from([
            ("A".to_owned(), Secret::new("one")),
            ("B".to_owned(), Secret::new("")),
        ]);
        let encoded = encode_secrets(&secrets);
        assert_eq!(encoded.len(), encoded.capacity());
        assert_eq!(decode_secrets(&encoded).unwrap(), secrets);
    }

    #[test]
    fn truncated_or_padded_secret_encodings_are_refused() {
        let secrets = BTreeMap::from([("A".to_owned(), Secret::new("one"))]);
        let encoded = encode_secrets(&secrets);
        for cut in 0..encoded.len() {
            assert_eq!(decode_secrets(&encoded[..cut]), Err(MalformedSecrets));
        }
        let mut padded = encoded.to_vec();
        padded.push(0);
        assert_eq!(decode_secrets(&padded), Err(MalformedSecrets));
    }

    #[test]
    fn huge_declared_counts_do_not_allocate_or_panic() {
        let mut bogus = Vec::new();
        put_len(&mut bogus, usize::MAX);
        put_len(&mut bogus, usize::MAX);
        assert_eq!(decode_secrets(&bogus), Err(MalformedSecrets));
    }
}
