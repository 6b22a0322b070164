//! Envoy's command operators (`%DOWNSTREAM_REMOTE_ADDRESS%`, `%REQ(x-id)%`, `%RESPONSE_CODE%`
//! …) in header values and access-log formats, parsed once when the configuration is loaded.
//! Header values take the operators whose values exist when a request is routed; access logs
//! take those too and the ones known when it ends. Any other is refused with its name, never
//! sent verbatim.

use crate::error::{Result, ValidationError};
use crate::time_format::{TimeFormat, parse_time_format};

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
    /// `%START_TIME%`: in Envoy's default form (`2026-12-07T11:29:03.123Z`) or, with an
    /// argument, in that `strftime` form (UTC).
    StartTime(Option<TimeFormat>),
    /// `%REQ(name?alternative):max_length%`: a request header (pseudo-headers included).
    Request(HeaderOperand),
    /// `%RESP(name?alternative):max_length%`: a response header (access logs only).
    Response(HeaderOperand),
    /// `%RESPONSE_CODE%` (0 when no response was sent).
    ResponseCode,
    /// `%RESPONSE_FLAGS%`: Envoy's short codes (`UH`, `UF,URX` …).
    ResponseFlags,
    /// `%BYTES_RECEIVED%`: request body bytes.
    BytesReceived,
    /// `%BYTES_SENT%`: response body bytes.
    BytesSent,
    /// `%DURATION%`: milliseconds from the first byte of the request to the last of the
    /// response.
    Duration,
    /// `%UPSTREAM_HOST%`: the address of the upstream host that answered.
    UpstreamHost,
    /// `%UPSTREAM_CLUSTER%`: the cluster the request was routed to.
    UpstreamCluster,
    /// `%ROUTE_NAME%`.
    RouteName,
    /// `%REQUESTED_SERVER_NAME%`: the SNI of the request's TLS connection (`-` on plaintext).
    RequestedServerName,
    /// `%DOWNSTREAM_TLS_VERSION%`: `TLSv1.2` or `TLSv1.3`.
    DownstreamTlsVersion,
    /// `%DOWNSTREAM_TLS_CIPHER%`: the suite's BoringSSL name.
    DownstreamTlsCipher,
    /// `%DOWNSTREAM_PEER_URI_SAN%`: the client certificate's URI SANs, joined by `,`.
    DownstreamPeerUriSan,
    /// `%DOWNSTREAM_PEER_DNS_SAN%`: its DNS SANs, joined by `,`.
    DownstreamPeerDnsSan,
}

/// A header read by `%REQ(...)%` or `%RESP(...)%`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderOperand {
    /// Lower case; may be a pseudo-header (`:path`).
    pub name: String,
    /// Read when `name` is absent.
    pub alternative: Option<String>,
    /// Truncates the value to this many characters.
    pub max_length: Option<usize>,
}

impl Command {
    /// Whether the value is a number (typed JSON access logs print it unquoted).
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            Command::ResponseCode
                | Command::BytesReceived
                | Command::BytesSent
                | Command::Duration
                | Command::DownstreamRemotePort
                | Command::DownstreamLocalPort
        )
    }

    /// Whether the value exists only once the request has ended.
    fn at_end_only(&self) -> bool {
        matches!(
            self,
            Command::Response(_)
                | Command::ResponseCode
                | Command::ResponseFlags
                | Command::BytesReceived
                | Command::BytesSent
                | Command::Duration
                | Command::UpstreamHost
                | Command::UpstreamCluster
                | Command::RouteName
        )
    }
}

/// Where a format is used, which decides the operators it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FormatScope {
    /// A header value computed when the request is routed.
    Header,
    /// An access-log line written when the request ends.
    AccessLog,
}

impl Format {
    /// Whether any part is a command (a value without one is a literal).
    pub fn has_commands(&self) -> bool {
        self.0.iter().any(|p| matches!(p, FormatPart::Command(_)))
    }

    /// The only part, when the format is one command and nothing else (a typed JSON value).
    pub fn single_command(&self) -> Option<&Command> {
        match self.0.as_slice() {
            [FormatPart::Command(command)] => Some(command),
            _ => None,
        }
    }

    /// Every command, in order.
    pub fn commands(&self) -> impl Iterator<Item = &Command> {
        self.0.iter().filter_map(|part| match part {
            FormatPart::Command(command) => Some(command),
            FormatPart::Text(_) => None,
        })
    }
}

/// Parses `text` as Envoy's substitution format: `%%` is a literal `%`.
pub(crate) fn parse_format(text: &str, scope: FormatScope) -> Result<Format> {
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
        let command = command(token)?;
        if scope == FormatScope::Header && command.at_end_only() {
            return Err(ValidationError::not_enforced(
                "",
                &format!(
                    "command operator %{}% in a header value (it is known when the request \
                     ends: access logs take it)",
                    token.split('(').next().unwrap_or(token)
                ),
            ));
        }
        parts.push(FormatPart::Command(command));
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
        "START_TIME" => match (args, suffix) {
            (None, "") => Ok(Command::StartTime(None)),
            (Some(format), "") => Ok(Command::StartTime(Some(parse_time_format(format)?))),
            _ => Err(ValidationError::new(
                "",
                format!("unexpected {suffix:?} after %START_TIME(...)%"),
            )),
        },
        "REQ" => header_operand(name, args, suffix).map(Command::Request),
        "RESP" => header_operand(name, args, suffix).map(Command::Response),
        "RESPONSE_CODE" => plain(Command::ResponseCode),
        "RESPONSE_FLAGS" => plain(Command::ResponseFlags),
        "BYTES_RECEIVED" => plain(Command::BytesReceived),
        "BYTES_SENT" => plain(Command::BytesSent),
        "DURATION" => plain(Command::Duration),
        "UPSTREAM_HOST" => plain(Command::UpstreamHost),
        "UPSTREAM_CLUSTER" => plain(Command::UpstreamCluster),
        "ROUTE_NAME" => plain(Command::RouteName),
        "REQUESTED_SERVER_NAME" => plain(Command::RequestedServerName),
        "DOWNSTREAM_TLS_VERSION" => plain(Command::DownstreamTlsVersion),
        "DOWNSTREAM_TLS_CIPHER" => plain(Command::DownstreamTlsCipher),
        "DOWNSTREAM_PEER_URI_SAN" => plain(Command::DownstreamPeerUriSan),
        "DOWNSTREAM_PEER_DNS_SAN" => plain(Command::DownstreamPeerDnsSan),
        other => Err(ValidationError::not_enforced(
            "",
            &format!("command operator %{other}%"),
        )),
    }
}

/// `NAME(name?alternative):max_length` of `%REQ%` and `%RESP%`.
fn header_operand(operator: &str, args: Option<&str>, suffix: &str) -> Result<HeaderOperand> {
    let args = args.filter(|a| !a.is_empty()).ok_or_else(|| {
        ValidationError::new("", format!("%{operator}(...)% needs a header name"))
    })?;
    let (name, alternative) = match args.split_once('?') {
        Some((name, alternative)) => (name, Some(alternative.to_ascii_lowercase())),
        None => (args, None),
    };
    let max_length = match suffix.strip_prefix(':') {
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            ValidationError::new("", format!("%{operator}% length {n:?} is not a number"))
        })?),
        None if suffix.is_empty() => None,
        None => {
            return Err(ValidationError::new(
                "",
                format!("unexpected {suffix:?} after %{operator}(...)%"),
            ));
        }
    };
    Ok(HeaderOperand {
        name: name.to_ascii_lowercase(),
        alternative,
        max_length,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_commands_and_escapes() {
        let format = parse_format(
            "ip=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% 100%% %REQ(X-Id?:PATH):4%",
            FormatScope::Header,
        )
        .expect("a format");
        assert_eq!(
            format.0,
            [
                FormatPart::Text("ip=".into()),
                FormatPart::Command(Command::DownstreamRemoteAddress { with_port: false }),
                FormatPart::Text(" 100% ".into()),
                FormatPart::Command(Command::Request(HeaderOperand {
                    name: "x-id".into(),
                    alternative: Some(":path".into()),
                    max_length: Some(4),
                })),
            ]
        );
        assert!(
            !parse_format("50%% off", FormatScope::Header)
                .expect("a literal")
                .has_commands()
        );
    }

    #[test]
    fn what_is_not_built_is_refused_by_name() {
        let header = FormatScope::Header;
        let unsupported =
            parse_format("%UPSTREAM_METADATA([\"a\",\"b\"])%", header).expect_err("refused");
        assert!(
            unsupported.to_string().contains("%UPSTREAM_METADATA%"),
            "{unsupported}"
        );
        assert!(
            parse_format("50% off", header).is_err(),
            "a lone % is an error"
        );
        assert!(parse_format("%HOSTNAME(x)%", header).is_err());
        assert!(parse_format("%REQ()%", header).is_err());
        let late = parse_format("%RESPONSE_CODE%", header).expect_err("not known yet");
        assert!(late.to_string().contains("access logs"), "{late}");
    }

    #[test]
    fn access_log_operators() {
        let format = parse_format(
            "%START_TIME(%s)% %RESP(server):3% %DURATION%",
            FormatScope::AccessLog,
        )
        .expect("a format");
        let commands: Vec<_> = format.commands().collect();
        assert!(matches!(commands[0], Command::StartTime(Some(_))));
        assert_eq!(
            commands[1],
            &Command::Response(HeaderOperand {
                name: "server".into(),
                alternative: None,
                max_length: Some(3),
            })
        );
        assert_eq!(commands[2], &Command::Duration);
        assert!(commands[2].is_numeric());
        let single = parse_format("%RESPONSE_CODE%", FormatScope::AccessLog).expect("one");
        assert_eq!(single.single_command(), Some(&Command::ResponseCode));
    }
}
