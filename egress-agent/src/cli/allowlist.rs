//! `relay add|remove|list` and `exempt add|remove|list`: the same verbs on two kinds.

use super::{AllowAction, CliError, decode, print_listing, request};
use crate::{
    allowlist::{AllowKind, Entry},
    control::Request,
    prefix,
};

pub fn allowlist(kind: AllowKind, action: AllowAction) -> Result<(), CliError> {
    match action {
        AllowAction::Add {
            cidr,
            comment,
            socket,
        } => {
            // Checked here too, so a typo never needs a running agent to be reported.
            let prefix = prefix::parse(&cidr).map_err(|e| CliError::Invalid(e.to_string()))?;
            request(
                &socket,
                &Request::AllowAdd {
                    kind,
                    prefix: prefix.to_string(),
                    comment,
                },
            )?;
            Ok(())
        }
        AllowAction::Remove { cidr, socket } => {
            let prefix = prefix::parse(&cidr).map_err(|e| CliError::Invalid(e.to_string()))?;
            request(
                &socket,
                &Request::AllowRemove {
                    kind,
                    prefix: prefix.to_string(),
                },
            )?;
            Ok(())
        }
        AllowAction::List(list) => {
            let entries: Vec<Entry> = decode(request(&list.socket, &Request::AllowList { kind })?)?;
            let headers = ["PREFIX", "SOURCE", "COMMENT", "ADDED"];
            print_listing(&entries, list.json, &headers, |e| {
                vec![
                    e.prefix.to_string(),
                    e.source.as_str().into(),
                    e.comment.clone(),
                    e.added.clone(),
                ]
            })
        }
    }
}
