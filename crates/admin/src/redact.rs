//! Printing an admin message as Envoy does, with secrets redacted first: every field marked
//! `[(udpa.annotations.sensitive) = true]` (TLS private keys, passwords, …), and everything below
//! it, reads `"[redacted]"` (strings and bytes) or is cleared (other scalars), including inside
//! `Any`s. This is Envoy's `MessageUtil::redact`, applied to `/config_dump` output.

use std::collections::HashSet;
use std::sync::OnceLock;

use prost::Message;
use prost::bytes::Bytes;
use prost_reflect::{DynamicMessage, Kind, ReflectMessage, SerializeOptions, Value};

use outrider_envoy_json::JsonError;

const REDACTED: &str = "[redacted]";

/// Every field of the Envoy API marked `[(udpa.annotations.sensitive) = true]` in envoy-types
/// 0.7.7, as `(message, field number)`. The descriptor set of `outrider-envoy-json` does not
/// keep custom field options today (prost drops unknown option fields when encoding it), so the
/// annotation cannot be read at run time; options found in the pool are added to this list.
const SENSITIVE_FIELDS: &[(&str, u32)] = &[
    (
        "envoy.config.core.v3.GrpcService.GoogleGrpc.SslCredentials",
        2,
    ), // private_key
    ("envoy.config.grpc_credential.v3.FileBasedMetadataConfig", 1), // secret_data
    ("envoy.config.trace.v3.ClientConfig", 3),                      // backend_token
    (
        "envoy.extensions.common.aws.v3.AssumeRoleWithWebIdentityCredentialProvider",
        1,
    ),
    (
        "envoy.extensions.common.aws.v3.CredentialsFileCredentialProvider",
        1,
    ),
    (
        "envoy.extensions.common.aws.v3.IAMRolesAnywhereCredentialProvider",
        4,
    ),
    ("envoy.extensions.common.aws.v3.InlineCredentialProvider", 2),
    ("envoy.extensions.common.aws.v3.InlineCredentialProvider", 3),
    (
        "envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth",
        1,
    ),
    (
        "envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuthPerRoute",
        1,
    ),
    ("envoy.extensions.filters.http.basic_auth.v3.BasicAuth", 1),
    (
        "envoy.extensions.filters.http.basic_auth.v3.BasicAuthPerRoute",
        1,
    ),
    (
        "envoy.extensions.filters.http.ext_authz.v3.CheckSettings",
        1,
    ),
    (
        "envoy.extensions.filters.network.redis_proxy.v3.RedisProtocolOptions",
        1,
    ),
    (
        "envoy.extensions.filters.network.redis_proxy.v3.RedisProtocolOptions",
        2,
    ),
    (
        "envoy.extensions.filters.network.redis_proxy.v3.RedisProtocolOptions.Credential",
        2,
    ),
    (
        "envoy.extensions.filters.network.redis_proxy.v3.RedisProtocolOptions.Credential",
        3,
    ),
    (
        "envoy.extensions.filters.network.redis_proxy.v3.RedisProxy",
        6,
    ),
    (
        "envoy.extensions.filters.network.redis_proxy.v3.RedisProxy",
        7,
    ),
    (
        "envoy.extensions.filters.network.redis_proxy.v3.RedisProxy",
        9,
    ),
    (
        "envoy.extensions.grpc_service.call_credentials.file_based_metadata.v3.FileBasedMetadataCallCredentials",
        1,
    ),
    ("envoy.extensions.transport_sockets.tls.v3.GenericSecret", 1), // secret
    ("envoy.extensions.transport_sockets.tls.v3.GenericSecret", 2), // secrets
    (
        "envoy.extensions.transport_sockets.tls.v3.PrivateKeyProvider",
        3,
    ), // typed_config
    (
        "envoy.extensions.transport_sockets.tls.v3.TlsCertificate",
        2,
    ), // private_key
    (
        "envoy.extensions.transport_sockets.tls.v3.TlsCertificate",
        3,
    ), // password
    (
        "envoy.extensions.transport_sockets.tls.v3.TlsCertificate",
        8,
    ), // pkcs12
    (
        "envoy.extensions.transport_sockets.tls.v3.TlsSessionTicketKeys",
        1,
    ), // keys
];

/// `(message full name, field number)` of every sensitive field, computed once: reading field
/// options decodes them, too slow to repeat per field per dump.
fn sensitive_fields() -> &'static HashSet<(String, u32)> {
    static SENSITIVE: OnceLock<HashSet<(String, u32)>> = OnceLock::new();
    SENSITIVE.get_or_init(|| {
        let mut fields: HashSet<(String, u32)> = SENSITIVE_FIELDS
            .iter()
            .map(|(message, number)| ((*message).to_string(), *number))
            .collect();
        let pool = outrider_envoy_json::pool();
        if let Some(extension) = pool.get_extension_by_name("udpa.annotations.sensitive") {
            fields.extend(
                pool.all_messages()
                    .flat_map(|message| message.fields().collect::<Vec<_>>())
                    .filter(|field| {
                        field
                            .options()
                            .get_extension(&extension)
                            .as_bool()
                            .unwrap_or(false)
                    })
                    .map(|field| {
                        (
                            field.parent_message().full_name().to_string(),
                            field.number(),
                        )
                    }),
            );
        }
        fields
    })
}

/// Prints `msg` as Envoy's admin does (snake_case, `@type` on every `Any`, defaults omitted)
/// after redacting its sensitive fields.
pub(crate) fn to_redacted_value<M: prost::Message + prost::Name>(
    msg: &M,
) -> Result<serde_json::Value, JsonError> {
    let desc = outrider_envoy_json::descriptor(&M::full_name())?;
    let mut dynamic = DynamicMessage::decode(desc, msg.encode_to_vec().as_slice())
        .map_err(|e| JsonError::Decode(e.to_string()))?;
    redact(&mut dynamic, false);
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(true)
        .stringify_64_bit_integers(true);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| JsonError::Decode(e.to_string()))
}

fn redact(msg: &mut DynamicMessage, ancestor_is_sensitive: bool) {
    if redact_any(msg, ancestor_is_sensitive) {
        return;
    }
    let sensitive = sensitive_fields();
    let desc = msg.descriptor();
    let message_name = desc.full_name().to_string();
    for field in desc.fields() {
        let is_sensitive =
            ancestor_is_sensitive || sensitive.contains(&(message_name.clone(), field.number()));
        if let Kind::Message(_) = field.kind() {
            if !msg.has_field(&field) {
                continue;
            }
            match msg.get_field_mut(&field) {
                Value::Message(sub) => redact(sub, is_sensitive),
                Value::List(items) => {
                    for item in items {
                        if let Value::Message(sub) = item {
                            redact(sub, is_sensitive);
                        }
                    }
                }
                Value::Map(entries) => {
                    for value in entries.values_mut() {
                        redact_value(value, is_sensitive);
                    }
                }
                _ => {}
            }
        } else if is_sensitive && msg.has_field(&field) {
            match field.kind() {
                Kind::String | Kind::Bytes => redact_value(msg.get_field_mut(&field), true),
                _ => msg.clear_field(&field),
            }
        }
    }
}

/// Redacts one value reached below a (possibly) sensitive field.
fn redact_value(value: &mut Value, sensitive: bool) {
    match value {
        Value::Message(sub) => redact(sub, sensitive),
        Value::List(items) => items.iter_mut().for_each(|v| redact_value(v, sensitive)),
        Value::String(s) if sensitive => *s = REDACTED.to_string(),
        Value::Bytes(b) if sensitive => *b = Bytes::from_static(REDACTED.as_bytes()),
        _ => {}
    }
}

/// An `Any` whose type we know is unpacked, redacted and packed again; one we do not know is
/// treated like any other message (so only a sensitive ancestor redacts its bytes), as Envoy does.
fn redact_any(msg: &mut DynamicMessage, ancestor_is_sensitive: bool) -> bool {
    if msg.descriptor().full_name() != "google.protobuf.Any" {
        return false;
    }
    let type_url = msg
        .get_field_by_name("type_url")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let type_name = type_url.rsplit('/').next().unwrap_or(&type_url);
    let Ok(desc) = outrider_envoy_json::descriptor(type_name) else {
        return false;
    };
    let bytes = msg
        .get_field_by_name("value")
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default();
    let Ok(mut inner) = DynamicMessage::decode(desc, bytes) else {
        return false;
    };
    redact(&mut inner, ancestor_is_sensitive);
    msg.set_field_by_name("value", Value::Bytes(Bytes::from(inner.encode_to_vec())));
    true
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;

    use super::*;

    #[test]
    fn private_key_is_redacted_inside_any() {
        let secret: Secret = outrider_envoy_json::from_value(&serde_json::json!({
            "name": "server-cert",
            "tls_certificate": {
                "certificate_chain": { "inline_string": "CERT" },
                "private_key": { "inline_string": "KEY" },
                "password": { "inline_bytes": "c2VjcmV0" },
            }
        }))
        .expect("valid secret");
        let dump = envoy_types::pb::envoy::admin::v3::SecretsConfigDump {
            static_secrets: vec![
                envoy_types::pb::envoy::admin::v3::secrets_config_dump::StaticSecret {
                    name: "server-cert".into(),
                    last_updated: None,
                    secret: Some(crate::xds_record::pack(&secret)),
                },
            ],
            ..Default::default()
        };
        let value = to_redacted_value(&dump).expect("printable");
        let cert = &value["static_secrets"][0]["secret"]["tls_certificate"];
        assert_eq!(cert["certificate_chain"]["inline_string"], "CERT");
        assert_eq!(cert["private_key"]["inline_string"], "[redacted]");
        // Bytes print as base64 of "[redacted]".
        assert_eq!(cert["password"]["inline_bytes"], "W3JlZGFjdGVkXQ==");
    }
}
