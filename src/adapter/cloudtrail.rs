//! AWS CloudTrail, bare or inside an EventBridge envelope (`detail`).
//!
//! IAM users, roles, access keys, login profiles and policy grants are entities named by
//! ARN (`arn:aws:iam::<account>:user/<name>`, built from the account and the name when a
//! record gives only the name); access keys and STS credentials by their key id. Every
//! record signed by an access key also yields `used` for that key, whose parent is the
//! user or role it belongs to — so a call with the key of a deleted user is covered by the
//! user's case. An `errorCode` makes the action a failure; for `used`, only errors that
//! mean the credential did not authenticate do (an `AccessDenied` call proves the key
//! works). Session tokens and policy documents are never copied. Records from before
//! CloudTrail had `eventID` get a content id.

use serde_json::Value;

use super::fields::{at, id_or_content, last_segment, required, str_at, text, time};
use super::{Draft, Emitter};
use crate::error::DecodeError;
use crate::event::{Action, EntityKind};
use crate::time::Micros;

/// Errors with which AWS refuses the credential itself, rather than the request.
const AUTHENTICATION_ERRORS: &[&str] = &[
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
    "IncompleteSignature",
    "AuthFailure",
];

/// One CloudTrail record being read.
struct Record<'a> {
    r: &'a Value,
    id: String,
    time: Micros,
    account: Option<String>,
    error: Option<String>,
    actor: Option<String>,
}

impl Record<'_> {
    fn iam_arn(&self, kind: &str, name: &str) -> String {
        match &self.account {
            Some(account) => format!("arn:aws:iam::{account}:{kind}/{}", last_segment(name)),
            None => name.to_owned(),
        }
    }

    /// The user a request is about: `requestParameters.userName`, else the caller.
    fn subject_user(&self) -> Option<String> {
        str_at(self.r, "requestParameters.userName")
            .map(|u| self.iam_arn("user", u))
            .or_else(|| self.caller())
    }

    /// The caller as an IAM principal: the user, the root, or the role behind a session.
    fn caller(&self) -> Option<String> {
        let ui = at(self.r, "userIdentity")?;
        let account = str_at(ui, "accountId").or(self.account.as_deref());
        match str_at(ui, "type")? {
            "IAMUser" => {
                // CloudTrail hides the name typed at a failed sign-in of an unknown user.
                let name =
                    str_at(ui, "userName").filter(|n| *n != "HIDDEN_DUE_TO_SECURITY_REASONS")?;
                Some(match account {
                    Some(a) => format!("arn:aws:iam::{a}:user/{name}"),
                    None => name.to_owned(),
                })
            }
            "Root" => account.map(|a| format!("arn:aws:iam::{a}:root")),
            "AssumedRole" | "FederatedUser" => {
                str_at(ui, "sessionContext.sessionIssuer.arn").map(str::to_owned)
            }
            _ => None,
        }
    }

    /// An event of this record about `entity`, with its actor, outcome and attributes.
    fn emit<'o>(
        &self,
        out: &'o mut Emitter,
        id: String,
        entity: String,
        kind: EntityKind,
        action: Action,
    ) -> Draft<'o> {
        out.emit(id, self.time, entity, kind, action)
            .actor(self.actor.clone())
            .failed(self.error.is_some())
            .attr("aws.event", text(self.r, "eventName"))
            .attr("aws.error", self.error.clone())
            .attr("ip", text(self.r, "sourceIPAddress"))
    }
}

/// The kind of an IAM principal ARN: a role, else a user.
fn principal_kind(arn: &str) -> EntityKind {
    if arn.contains(":role/") {
        EntityKind::Role
    } else {
        EntityKind::User
    }
}

/// Normalises one CloudTrail record (or EventBridge event carrying one).
pub fn normalize(value: &Value, out: &mut Emitter) -> Result<(), DecodeError> {
    let r = match at(value, "detail") {
        Some(detail) if at(value, "detail-type").is_some() => detail,
        _ => value,
    };
    let name = required(r, "eventName")?;
    let rec = Record {
        r,
        id: id_or_content(r, &["eventID"]),
        time: time(r, &["eventTime"])?,
        account: first(r, &["recipientAccountId", "userIdentity.accountId"]),
        error: text(r, "errorCode"),
        actor: first(
            r,
            &[
                "userIdentity.arn",
                "userIdentity.principalId",
                "userIdentity.invokedBy",
            ],
        ),
    };
    let before = out.events.len();
    lifecycle(&rec, &name, out);
    usage(&rec, &name, out.events.len() > before, out);
    if out.events.len() == before {
        out.skip(name);
    }
    Ok(())
}

fn first(r: &Value, paths: &[&str]) -> Option<String> {
    super::fields::first_text(r, paths)
}

/// The identity-lifecycle meaning of IAM and STS calls.
fn lifecycle(rec: &Record<'_>, name: &str, out: &mut Emitter) {
    let r = rec.r;
    let req = |k: &str| str_at(r, &format!("requestParameters.{k}"));
    let user = || req("userName").map(|u| rec.iam_arn("user", u));
    let role = || req("roleName").map(|n| rec.iam_arn("role", n));
    use Action::*;
    use EntityKind as K;
    let (entity, kind, action, parent) = match name {
        "CreateUser" => (
            str_at(r, "responseElements.user.arn")
                .map(str::to_owned)
                .or_else(user),
            K::User,
            Created,
            None,
        ),
        "DeleteUser" => (user(), K::User, Deleted, None),
        "CreateRole" => (
            str_at(r, "responseElements.role.arn")
                .map(str::to_owned)
                .or_else(role),
            K::Role,
            Created,
            None,
        ),
        "DeleteRole" => (role(), K::Role, Deleted, None),
        "CreateAccessKey" => {
            let owner = str_at(r, "responseElements.accessKey.userName")
                .map(|u| rec.iam_arn("user", u))
                .or_else(|| rec.subject_user());
            match text(r, "responseElements.accessKey.accessKeyId") {
                Some(key) => (Some(key), K::ApiKey, Issued, owner),
                // Refused: no key exists; the failure is recorded against its owner.
                None if rec.error.is_some() => (owner, K::User, Issued, None),
                None => (None, K::ApiKey, Issued, None),
            }
        }
        "DeleteAccessKey" => (
            req("accessKeyId").map(str::to_owned),
            K::ApiKey,
            Deleted,
            rec.subject_user(),
        ),
        "UpdateAccessKey" => (
            req("accessKeyId").map(str::to_owned),
            K::ApiKey,
            if req("status") == Some("Inactive") {
                Disabled
            } else {
                Enabled
            },
            rec.subject_user(),
        ),
        "CreateLoginProfile" | "DeleteLoginProfile" | "UpdateLoginProfile" => {
            let owner = rec.subject_user();
            let action = match name {
                "CreateLoginProfile" => Issued,
                "DeleteLoginProfile" => Deleted,
                _ => Rotated,
            };
            (
                owner.as_ref().map(|u| format!("{u}/login-profile")),
                K::Secret,
                action,
                owner,
            )
        }
        "AttachUserPolicy" | "DetachUserPolicy" | "AttachRolePolicy" | "DetachRolePolicy"
        | "AttachGroupPolicy" | "DetachGroupPolicy" => {
            let principal = user()
                .or_else(role)
                .or_else(|| req("groupName").map(|g| rec.iam_arn("group", g)));
            let action = if name.starts_with("Attach") {
                Granted
            } else {
                Revoked
            };
            let grant = principal
                .as_ref()
                .zip(req("policyArn"))
                .map(|(p, policy)| format!("{p}|{policy}"));
            (grant, K::Other, action, principal)
        }
        "PutUserPolicy" | "DeleteUserPolicy" | "PutRolePolicy" | "DeleteRolePolicy" => {
            let principal = user().or_else(role);
            let action = if name.starts_with("Put") {
                Granted
            } else {
                Revoked
            };
            let grant = principal
                .as_ref()
                .zip(req("policyName"))
                .map(|(p, policy)| format!("{p}|inline/{policy}"));
            (grant, K::Other, action, principal)
        }
        "AddUserToGroup" | "RemoveUserFromGroup" => {
            let member = user();
            let action = if name == "AddUserToGroup" {
                Granted
            } else {
                Revoked
            };
            let grant = member
                .as_ref()
                .zip(req("groupName"))
                .map(|(u, g)| format!("{u}|{}", rec.iam_arn("group", g)));
            (grant, K::Other, action, member)
        }
        "CreatePolicy" => (
            text(r, "responseElements.policy.arn"),
            K::Other,
            Created,
            None,
        ),
        "DeletePolicy" => (req("policyArn").map(str::to_owned), K::Other, Deleted, None),
        "AssumeRole" | "AssumeRoleWithSAML" | "AssumeRoleWithWebIdentity" => {
            let role = req("roleArn").map(|arn| {
                let account = arn.split(':').nth(4).filter(|a| !a.is_empty());
                match account {
                    Some(a) => format!("arn:aws:iam::{a}:role/{}", last_segment(arn)),
                    None => arn.to_owned(),
                }
            });
            session(rec, role, out);
            return;
        }
        "GetSessionToken" | "GetFederationToken" => {
            session(rec, rec.caller(), out);
            return;
        }
        "ConsoleLogin" => {
            let failed = str_at(r, "responseElements.ConsoleLogin") == Some("Failure");
            if let Some(principal) = rec.caller() {
                let kind = principal_kind(&principal);
                rec.emit(out, rec.id.clone(), principal, kind, Used)
                    .failed(failed);
            }
            return;
        }
        _ => return,
    };
    if let Some(entity) = entity {
        let quarantine = name.ends_with("UserPolicy")
            && req("policyName").is_some_and(|p| p.starts_with("AWSCompromisedKeyQuarantine"));
        rec.emit(out, rec.id.clone(), entity, kind, action)
            .parent(parent)
            .attr("aws.quarantine", quarantine.then_some("true"));
    }
}

/// STS credentials issued from `parent` (a role, or the calling user).
fn session(rec: &Record<'_>, parent: Option<String>, out: &mut Emitter) {
    match text(rec.r, "responseElements.credentials.accessKeyId") {
        Some(key) => {
            rec.emit(out, rec.id.clone(), key, EntityKind::Token, Action::Issued)
                .parent(parent)
                .attr(
                    "aws.session",
                    first(
                        rec.r,
                        &[
                            "responseElements.federatedUser.arn",
                            "responseElements.assumedRoleUser.arn",
                        ],
                    ),
                )
                .attr(
                    "aws.expiration",
                    text(rec.r, "responseElements.credentials.expiration"),
                );
        }
        // Refused: no credential exists; the failure is recorded against its source.
        None if rec.error.is_some() => {
            if let Some(p) = parent {
                let kind = principal_kind(&p);
                rec.emit(out, rec.id.clone(), p, kind, Action::Issued);
            }
        }
        None => {}
    }
}

/// `used` by the access key that signed the record.
fn usage(rec: &Record<'_>, name: &str, second: bool, out: &mut Emitter) {
    let Some(key) = text(rec.r, "userIdentity.accessKeyId") else {
        return;
    };
    let session = matches!(
        str_at(rec.r, "userIdentity.type"),
        Some("AssumedRole" | "FederatedUser")
    ) || key.starts_with("ASIA");
    let kind = if session {
        EntityKind::Token
    } else {
        EntityKind::ApiKey
    };
    let id = if second {
        format!("{}/used", rec.id)
    } else {
        rec.id.clone()
    };
    let parent = rec.caller();
    let refused = rec
        .error
        .as_deref()
        .is_some_and(|e| AUTHENTICATION_ERRORS.contains(&e));
    out.emit(id, rec.time, key, kind, Action::Used)
        .parent(parent)
        .actor(rec.actor.clone())
        .failed(refused)
        .attr("aws.event", Some(name))
        .attr("aws.error", rec.error.clone())
        .attr("ip", text(rec.r, "sourceIPAddress"));
}
