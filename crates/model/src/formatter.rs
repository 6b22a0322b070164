//! Envoy's command operators in header values (`%DOWNSTREAM_REMOTE_ADDRESS%`, `%REQ(x-id)%`
//! …), parsed once when the configuration is loaded. The operators whose values exist when a
//! request is routed are built; any other is refused with its name, never sent verbatim.

use crate::error::{Result, ValidationError};

/// A value made of text and command operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format(pub Vec<FormatPart>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatPart {
    Text(String),
    Command(Command),
}

/// The command operators built, with Envoy's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `%DOWNSTREAM_REMOTE_ADDRESS%` (`with_port`) and `_WITHOUT_PORT`: the client's address
    /// as the connection manager decided it (`x-forwarded-for` rules included).
    DownstreamRemoteAddress { with_port: bool },
    /// `%DOWNSTREAM_REMOTE_PORT%`.
    DownstreamRemotePort,
    /// `%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%` and `_WITHOUT_PORT`: the connection's peer.
    DownstreamDirectRemoteAddress { with_port: bool },
    /// `%DOWNSTREAM_LOCAL_ADDRESS%` and `_WITHOUT_PORT`.
    DownstreamLocalAddress { with_port: bool },
    /// `%DOWNSTREAM_LOCAL_PORT%`.
    DownstreamLocalPort,
    /// `%HOSTNAME%`: this host's name.
    Hostname,
    /// `%PROTOCOL%`: `HTTP/1.0`, `HTTP/1.1` or `HTTP/2`.
    Protocol,
    /// `%START_TIME%` in Envoy's default form (`2026-12-07T11:29:03.123Z`).
    StartTime,
    /// `%REQ(name?alternative):max_length%`: a request header (pseudo-headers included), else
    /// the alternative, truncated to `max_length` characters.
    Request {
        name: String,
        alternative: Option<String>,
        max_length: Option<usize>,
    },
}

impl Format {
    /// Whether any part is a command (a value without one is a literal).
    pub fn has_commands(&self) -> bool {
        self.0.iter().any(|p| matches!(p, FormatPart::Command(_)))
    }
}

/// Parses `text` as Envoy's substitution format: `%%` is a literal `%`.
pub(crate) fn parse_format(text: &str) -> Result<Format> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        literal.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('%') {
            literal.push('%');
            rest = after;
            continue;
        }
        let (token, after) = split_command(rest).ok_or_else(|| {
            ValidationError::new(
                "",
                format!("unterminated command operator in {text:?}; write %% for a literal %"),
            )
        })?;
        if !literal.is_empty() {
            parts.push(FormatPart::Text(std::mem::take(&mut literal)));
        }
        parts.push(FormatPart::Command(command(token)?));
        rest = after;
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(FormatPart::Text(literal));
    }
    Ok(Format(parts))
}

/// `NAME%…`, `NAME(args)%…` or `NAME(args):N%…` → (the command with its arguments, the rest).
fn split_command(rest: &str) -> Option<(&str, &str)> {
    let name_end = rest.find(['(', '%'])?;
    let close = if rest[name_end..].starts_with('(') {
        // Arguments may hold `%` only inside the parentheses.
        let args_end = name_end + rest[name_end..].find(')')?;
        args_end + rest[args_end..].find('%')?
    } else {
        name_end
    };
    Some((&rest[..close], &rest[close + 1..]))
}

fn command(token: &str) -> Result<Command> {
    let (name, args, suffix) = match token.find('(') {
        Some(open) => {
            let close = token.rfind(')').unwrap_or(token.len());
            (
                &token[..open],
                Some(&token[open + 1..close.max(open + 1)]),
                token.get(close + 1..).unwrap_or(""),
            )
        }
        None => (token, None, ""),
    };
    let plain = |command: Command| match (args, suffix) {
        (None, "") => Ok(command),
        _ => Err(ValidationError::new(
            "",
            format!("%{name}% takes no arguments"),
        )),
    };
    match name {
        "DOWNSTREAM_REMOTE_ADDRESS" => plain(Command::DownstreamRemoteAddress { with_port: true }),
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => {
            plain(Command::DownstreamRemoteAddress { with_port: false })
        }
        "DOWNSTREAM_REMOTE_PORT" => plain(Command::DownstreamRemotePort),
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS" => {
            plain(Command::DownstreamDirectRemoteAddress { with_port: true })
        }
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT" => {
            plain(Command::DownstreamDirectRemoteAddress { with_port: false })
        }
        "DOWNSTREAM_LOCAL_ADDRESS" => plain(Command::DownstreamLocalAddress { with_port: true }),
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => {
            plain(Command::DownstreamLocalAddress { with_port: false })
        }
        "DOWNSTREAM_LOCAL_PORT" => plain(Command::DownstreamLocalPort),
        "HOSTNAME" => plain(Command::Hostname),
        "PROTOCOL" => plain(Command::Protocol),
        "START_TIME" => plain(Command::StartTime),
        "REQ" => {
            let args = args
                .filter(|a| !a.is_empty())
                .ok_or_else(|| ValidationError::new("", "%REQ(...)% needs a header name"))?;
            let (name, alternative) = match args.split_once('?') {
                Some((name, alternative)) => (name, Some(alternative.to_ascii_lowercase())),
                None => (args, None),
            };
            let max_length = match suffix.strip_prefix(':') {
                Some(n) => Some(n.parse::<usize>().map_err(|_| {
                    ValidationError::new("", format!("%REQ% length {n:?} is not a number"))
                })?),
                None if suffix.is_empty() => None,
                None => {
                    return Err(ValidationError::new(
                        "",
                        format!("unexpected {suffix:?} after %REQ(...)%"),
                    ));
                }
            };
            Ok(Command::Request {
                name: name.to_ascii_lowercase(),
                alternative,
                max_length,
            })
        }
        other => Err(ValidationError::not_enforced(
            "",
            &format!("command operator %{other}%"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_commands_and_escapes() {
        let format =
            parse_format("ip=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% 100%% %REQ(X-Id?:PATH):4%")
                .expect("a format");
        assert_eq!(
            format.0,
            [
                FormatPart::Text("ip=".into()),
                FormatPart::Command(Command::DownstreamRemoteAddress { with_port: false }),
                FormatPart::Text(" 100% ".into()),
                FormatPart::Command(Command::Request {
                    name: "x-id".into(),
                    alternative: Some(":path".into()),
                    max_length: Some(4),
                }),
            ]
        );
        assert!(!parse_format("50%% off").expect("a literal").has_commands());
    }

    #[test]
    fn what_is_not_built_is_refused_by_name() {
        let unsupported = parse_format("%UPSTREAM_METADATA([\"a\",\"b\"])%").expect_err("refused");
        assert!(
            unsupported.to_string().contains("%UPSTREAM_METADATA%"),
            "{unsupported}"
        );
        assert!(parse_format("50% off").is_err(), "a lone % is an error");
        assert!(parse_format("%HOSTNAME(x)%").is_err());
        assert!(parse_format("%REQ()%").is_err());
    }
}
