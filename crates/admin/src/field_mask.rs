//! `google.protobuf.FieldMask` over reflected messages: the validity check and the trim that
//! protobuf's `FieldMaskUtil` does for Envoy's `/config_dump?mask=`, plus Envoy's extension that
//! reaches into the one `Any` field of a dump entry (`mask=cluster.name`).

use std::collections::BTreeMap;

use prost::Message;
use prost::bytes::Bytes;
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, ReflectMessage, Value};

/// A parsed mask: comma-separated dotted paths of proto field names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldMask {
    paths: Vec<String>,
}

/// The mask names a field the message does not have, or goes through a repeated field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidMask;

impl FieldMask {
    /// `FieldMaskUtil::FromString`: split on commas, empty pieces dropped.
    pub(crate) fn parse(text: &str) -> Self {
        FieldMask {
            paths: text
                .split(',')
                .filter(|path| !path.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    pub(crate) fn paths(&self) -> &[String] {
        &self.paths
    }

    /// `FieldMaskUtil::GetFieldDescriptors` on every path: each piece names a field, and every
    /// piece but the last is a singular message (a mask cannot index into a list or a map).
    pub(crate) fn is_valid_for(&self, desc: &MessageDescriptor) -> bool {
        self.paths.iter().all(|path| path_is_valid(desc, path))
    }

    /// Validates, then keeps only the fields the mask names (`FieldMaskUtil::TrimMessage`).
    pub(crate) fn trim(&self, msg: &mut DynamicMessage) -> Result<(), InvalidMask> {
        if !self.is_valid_for(&msg.descriptor()) {
            return Err(InvalidMask);
        }
        let mut tree = MaskNode::default();
        for path in &self.paths {
            tree.insert(path.split('.'));
        }
        tree.trim(msg);
        Ok(())
    }

    /// Envoy's `trimResourceMessage`: paths that start with the entry's singular `Any` field
    /// (`cluster` in a `DynamicCluster`) continue inside the packed message, which is unpacked,
    /// trimmed and packed again; the other paths apply to the entry itself.
    pub(crate) fn trim_resource(&self, msg: &mut DynamicMessage) -> Result<(), InvalidMask> {
        let desc = msg.descriptor();
        let mut outer = Vec::new();
        let mut inner = Vec::new();
        // A bare `cluster` keeps the whole packed message, whatever else names its fields.
        let mut whole_any = false;
        let mut any_field = None;
        for path in &self.paths {
            let (head, rest) = match path.split_once('.') {
                Some((head, rest)) => (head, Some(rest)),
                None => (path.as_str(), None),
            };
            let is_any = desc.get_field_by_name(head).is_some_and(|field| {
                !field.is_list()
                    && !field.is_map()
                    && matches!(field.kind(), Kind::Message(m) if m.full_name() == "google.protobuf.Any")
            });
            if !is_any {
                outer.push(path.clone());
                continue;
            }
            // Envoy's dump entries have a single Any field; a mask naming two is not one it
            // can apply.
            if any_field.get_or_insert_with(|| head.to_string()) != head {
                return Err(InvalidMask);
            }
            outer.push(head.to_string());
            match rest {
                Some(rest) => inner.push(rest.to_string()),
                // Envoy would reject the empty inner path; keeping the whole field is what such
                // a mask asks for.
                None => whole_any = true,
            }
        }
        if let Some(any_field) = any_field.filter(|_| !whole_any) {
            trim_any_field(msg, &any_field, &FieldMask { paths: inner })?;
        }
        FieldMask { paths: outer }.trim(msg)
    }
}

fn path_is_valid(desc: &MessageDescriptor, path: &str) -> bool {
    let mut current = desc.clone();
    let mut pieces = path.split('.').peekable();
    while let Some(piece) = pieces.next() {
        let Some(field) = current.get_field_by_name(piece) else {
            return false;
        };
        if pieces.peek().is_none() {
            return true;
        }
        match field.kind() {
            Kind::Message(next) if !field.is_list() && !field.is_map() => current = next,
            _ => return false,
        }
    }
    false
}

/// Unpacks the `Any` in `field`, trims the packed message with `mask`, and packs it back.
fn trim_any_field(
    msg: &mut DynamicMessage,
    field: &str,
    mask: &FieldMask,
) -> Result<(), InvalidMask> {
    let Some(field_desc) = msg.descriptor().get_field_by_name(field) else {
        return Err(InvalidMask);
    };
    if !msg.has_field(&field_desc) {
        // Nothing to trim, but the mask must still make sense for... nothing we can name.
        return Ok(());
    }
    let Value::Message(any) = msg.get_field_mut(&field_desc) else {
        return Err(InvalidMask);
    };
    let type_url = any
        .get_field_by_name("type_url")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let bytes = any
        .get_field_by_name("value")
        .and_then(|v| v.as_bytes().cloned())
        .unwrap_or_default();
    let type_name = type_url.rsplit('/').next().unwrap_or(&type_url);
    let inner_desc = outrider_envoy_json::descriptor(type_name).map_err(|_| InvalidMask)?;
    let mut inner = DynamicMessage::decode(inner_desc, bytes).map_err(|_| InvalidMask)?;
    mask.trim(&mut inner)?;
    any.set_field_by_name("value", Value::Bytes(Bytes::from(inner.encode_to_vec())));
    Ok(())
}

/// The mask as a tree; a node without children keeps its whole field.
#[derive(Debug, Default)]
struct MaskNode {
    children: BTreeMap<String, MaskNode>,
    whole: bool,
}

impl MaskNode {
    fn insert<'a>(&mut self, mut pieces: impl Iterator<Item = &'a str>) {
        match pieces.next() {
            None => {
                // "a" covers "a.b": the whole field is kept.
                self.whole = true;
                self.children.clear();
            }
            Some(piece) => {
                if self.whole {
                    return;
                }
                self.children
                    .entry(piece.to_string())
                    .or_default()
                    .insert(pieces);
            }
        }
    }

    fn trim(&self, msg: &mut DynamicMessage) {
        for field in msg.descriptor().fields() {
            match self.children.get(field.name()) {
                None => msg.clear_field(&field),
                Some(child) if child.whole => {}
                Some(child) => {
                    if msg.has_field(&field)
                        && let Value::Message(sub) = msg.get_field_mut(&field)
                    {
                        child.trim(sub);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster_desc() -> MessageDescriptor {
        outrider_envoy_json::descriptor("envoy.config.cluster.v3.Cluster").expect("in pool")
    }

    #[test]
    fn parse_drops_empty_paths() {
        assert_eq!(FieldMask::parse("a,,b.c,").paths(), ["a", "b.c"]);
    }

    #[test]
    fn validity_follows_field_mask_util() {
        let desc = cluster_desc();
        assert!(FieldMask::parse("name,connect_timeout.seconds").is_valid_for(&desc));
        assert!(!FieldMask::parse("nme").is_valid_for(&desc));
        // Through a repeated field: not allowed.
        assert!(!FieldMask::parse("health_checks.timeout").is_valid_for(&desc));
        // Through a scalar: not allowed.
        assert!(!FieldMask::parse("name.x").is_valid_for(&desc));
    }

    #[test]
    fn trim_keeps_named_fields_and_subfields() {
        let desc = cluster_desc();
        let value = serde_json::json!({
            "name": "a",
            "connect_timeout": "1.5s",
            "alt_stat_name": "x",
        });
        let mut msg = outrider_envoy_json::dynamic_from_value(&desc, &value).expect("valid");
        FieldMask::parse("name,connect_timeout.nanos")
            .trim(&mut msg)
            .expect("valid mask");
        let seconds = msg
            .get_field_by_name("connect_timeout")
            .and_then(|v| v.as_message().cloned())
            .and_then(|d| d.get_field_by_name("seconds").map(|s| s.into_owned()));
        assert_eq!(seconds, Some(Value::I64(0)));
        assert!(!msg.has_field_by_name("alt_stat_name"));
        assert!(msg.has_field_by_name("name"));
    }
}
