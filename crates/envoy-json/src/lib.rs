//! Envoy's canonical proto3 JSON (and YAML) for the Envoy v3 API, in both directions.
//!
//! Input accepts what Envoy accepts: snake_case or lowerCamelCase field names, `"@type"` on
//! `Any`, `"1s"` durations, enum names (in any case: Envoy's loader parses enums case-
//! insensitively, so `round_robin` is `ROUND_ROBIN`) or numbers. Unknown fields are an error that names the
//! field path, as in Envoy. Output is what Envoy's admin prints: snake_case names, `"@type"` on
//! every `Any`, default values left out.

use std::sync::{Mutex, PoisonError};

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};

/// The descriptor set compiled by `build.rs` from the `.proto` files shipped with `envoy-types`.
static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

/// Why a document could not be read or written as an Envoy message.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The text is not valid YAML or JSON at all.
    #[error("{0}")]
    Syntax(String),
    /// The document does not fit the message: `path` is the field path (`static_resources.clusters[0].connect_timeout`).
    #[error("{path}: {reason}")]
    Field { path: String, reason: String },
    /// The message type is not in the descriptor pool (an extension we do not know).
    #[error("unknown message type {0}")]
    UnknownType(String),
    /// The dynamic message could not be re-encoded as the typed message.
    #[error("{0}")]
    Decode(String),
}

/// The decoded pool, kept between uses until [`release_pool`].
static CACHED_POOL: Mutex<Option<DescriptorPool>> = Mutex::new(None);

/// The pool of every Envoy message type we can read or print, decoded on first use.
pub fn pool() -> DescriptorPool {
    let mut cached = CACHED_POOL.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(pool) = cached.as_ref() {
        return pool.clone();
    }
    let pool =
        DescriptorPool::decode(DESCRIPTORS).expect("descriptor set compiled by build.rs is valid");
    *cached = Some(pool.clone());
    pool
}

/// Forgets the decoded pool (a few MiB) once whatever still uses it is done, and gives the
/// freed memory back to the operating system; the next use decodes it again. A running proxy
/// needs it only to read its bootstrap and to print `/config_dump`, so it is released after
/// each.
pub fn release_pool() {
    let pool = CACHED_POOL
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    drop(pool);
    outrider_heap::release_free_memory();
}

/// The descriptor of a message type by its full name (`envoy.config.cluster.v3.Cluster`).
pub fn descriptor(full_name: &str) -> Result<MessageDescriptor, JsonError> {
    pool()
        .get_message_by_name(full_name)
        .ok_or_else(|| JsonError::UnknownType(full_name.to_string()))
}

/// Reads a YAML or JSON document (JSON is YAML) as a JSON value, of no message type yet.
pub fn yaml_value(text: &str) -> Result<serde_json::Value, JsonError> {
    serde_yaml::from_str(text).map_err(|e| JsonError::Syntax(e.to_string()))
}

/// Reads a YAML or JSON document (JSON is YAML) into an Envoy message.
pub fn from_yaml_str<M: prost::Message + prost::Name + Default>(
    text: &str,
) -> Result<M, JsonError> {
    let mut value: serde_json::Value =
        serde_yaml::from_str(text).map_err(|e| JsonError::Syntax(e.to_string()))?;
    upper_case_enums(&descriptor(&M::full_name())?, &mut value);
    from_value(&value)
}

/// Envoy's `case_insensitive_enum_parsing`: an enum value given as a string that is not one of
/// the enum's names, but whose upper-case form is, is replaced by that (`round_robin` →
/// `ROUND_ROBIN`). Anything else is left for the parser to accept or name as an error.
pub fn upper_case_enums(desc: &MessageDescriptor, value: &mut serde_json::Value) {
    use prost_reflect::Kind;
    let serde_json::Value::Object(map) = value else {
        return;
    };
    if desc.full_name() == "google.protobuf.Any" {
        let inner = map
            .get("@type")
            .and_then(|t| t.as_str())
            .and_then(|t| descriptor(t.rsplit('/').next().unwrap_or(t)).ok());
        if let Some(inner) = inner {
            upper_case_enums(&inner, value);
        }
        return;
    }
    for (key, field_value) in map.iter_mut() {
        let Some(field) = desc
            .get_field_by_name(key)
            .or_else(|| desc.get_field_by_json_name(key))
        else {
            continue;
        };
        let kind = if field.is_map() {
            match field.kind() {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                other => other,
            }
        } else {
            field.kind()
        };
        let mut each = |item: &mut serde_json::Value| match &kind {
            Kind::Enum(enum_desc) => {
                if let serde_json::Value::String(name) = item
                    && enum_desc.get_value_by_name(name).is_none()
                {
                    let upper = name.to_ascii_uppercase();
                    if enum_desc.get_value_by_name(&upper).is_some() {
                        *name = upper;
                    }
                }
            }
            Kind::Message(inner) => upper_case_enums(inner, item),
            _ => {}
        };
        match field_value {
            serde_json::Value::Array(items) if field.is_list() => {
                items.iter_mut().for_each(&mut each)
            }
            serde_json::Value::Object(entries) if field.is_map() => {
                entries.values_mut().for_each(&mut each)
            }
            other => each(other),
        }
    }
}

/// Reads a JSON value into an Envoy message.
pub fn from_value<M: prost::Message + prost::Name + Default>(
    value: &serde_json::Value,
) -> Result<M, JsonError> {
    let dynamic = dynamic_from_value(&descriptor(&M::full_name())?, value)?;
    dynamic
        .transcode_to::<M>()
        .map_err(|e| JsonError::Decode(e.to_string()))
}

/// Reads a JSON value into a dynamic message of the given type, tracking the field path on error.
pub fn dynamic_from_value(
    desc: &MessageDescriptor,
    value: &serde_json::Value,
) -> Result<DynamicMessage, JsonError> {
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(value, &mut track);
    DynamicMessage::deserialize(desc.clone(), de).map_err(|e| {
        let mut path = track.path().to_string();
        if path == "." {
            path.clear();
        }
        let mut reason = e.to_string();
        // prost-reflect reports an unknown field at its parent: move the name into the path.
        if let Some(name) = reason
            .strip_prefix("unrecognized field name '")
            .and_then(|rest| rest.strip_suffix('\''))
        {
            path = if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            };
            reason = "unknown field".to_string();
        }
        JsonError::Field { path, reason }
    })
}

/// Prints an Envoy message as Envoy's admin does (snake_case, `@type` on `Any`, defaults omitted).
pub fn to_value<M: prost::Message + prost::Name>(msg: &M) -> Result<serde_json::Value, JsonError> {
    let desc = descriptor(&M::full_name())?;
    let dynamic = DynamicMessage::decode(desc, msg.encode_to_vec().as_slice())
        .map_err(|e| JsonError::Decode(e.to_string()))?;
    dynamic_to_value(&dynamic)
}

/// Prints an `Any` (`type_url` + bytes) with its `@type`.
pub fn any_to_value(type_url: &str, bytes: &[u8]) -> Result<serde_json::Value, JsonError> {
    let name = type_url.rsplit('/').next().unwrap_or(type_url);
    let desc = descriptor(name)?;
    let dynamic =
        DynamicMessage::decode(desc, bytes).map_err(|e| JsonError::Decode(e.to_string()))?;
    let mut value = dynamic_to_value(&dynamic)?;
    if let serde_json::Value::Object(map) = &mut value {
        // "@type" first, as Envoy prints it.
        let mut with_type = serde_json::Map::with_capacity(map.len() + 1);
        with_type.insert(
            "@type".into(),
            serde_json::Value::String(type_url.to_string()),
        );
        with_type.append(map);
        return Ok(serde_json::Value::Object(with_type));
    }
    Ok(value)
}

fn dynamic_to_value(dynamic: &DynamicMessage) -> Result<serde_json::Value, JsonError> {
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(true)
        .stringify_64_bit_integers(true);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| JsonError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests;
