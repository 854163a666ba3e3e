//! Answering `who` and `reports` (on the blocking pool: they read SQLite).

use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use crate::{
    control::{ErrorKind, Response},
    history::parse_rfc3339,
    telemetry::TelemetryContext,
};

const NOT_CONFIGURED: &str =
    "no history: configure [identity] (RADIUS accounting) or [notify] in the config file";

pub fn who(context: &TelemetryContext, address: &str, at: Option<String>) -> Response {
    let Some(trace) = &context.traceability else {
        return Response::error(ErrorKind::Refused, NOT_CONFIGURED);
    };
    let target: IpNet = match address.trim().parse::<std::net::IpAddr>() {
        Ok(ip) => IpNet::from(ip),
        Err(_) => match address.trim().parse::<IpNet>() {
            Ok(net) => net.trunc(),
            Err(_) => {
                return Response::error(
                    ErrorKind::Invalid,
                    format!("`{address}` is not an IP address or prefix"),
                );
            }
        },
    };
    let at = match at.as_deref().map(parse_rfc3339).transpose() {
        Ok(at) => at.unwrap_or_else(SystemTime::now),
        Err(why) => return Response::error(ErrorKind::Invalid, why),
    };
    match trace.who(target, at) {
        Ok(sessions) => Response::data(&sessions),
        Err(err) => Response::error(ErrorKind::Internal, err.to_string()),
    }
}

pub fn reports(context: &TelemetryContext, since: Option<String>) -> Response {
    let Some(trace) = &context.traceability else {
        return Response::error(ErrorKind::Refused, NOT_CONFIGURED);
    };
    let since = match since.as_deref().map(parse_rfc3339).transpose() {
        Ok(since) => since.unwrap_or(UNIX_EPOCH),
        Err(why) => return Response::error(ErrorKind::Invalid, why),
    };
    match trace.reports(since) {
        Ok(rows) => Response::data(&rows),
        Err(err) => Response::error(ErrorKind::Internal, err.to_string()),
    }
}
