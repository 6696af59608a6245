//! Who may pass: an issuer's own policy (checked when its token is verified) and the route
//! policies of API path prefixes (checked per request). One membership check serves both.

use super::{
    claims::{Claims, Value},
    issuer::{RoutePolicy, TrustedIssuer},
    mapping::lookup,
    principal::Principal,
};

/// Roles, groups and access level, as both issuer and route policies state them.
fn require_membership(
    p: &Principal,
    any_role: &[String],
    any_group: &[String],
    min_group_level: Option<u32>,
) -> Result<(), String> {
    if !any_role.is_empty() && !p.user.roles.iter().any(|r| any_role.contains(r)) {
        return Err(format!("requires one of the roles {any_role:?}"));
    }
    if !any_group.is_empty() && !p.user.groups.iter().any(|g| any_group.contains(g)) {
        return Err(format!("requires one of the groups {any_group:?}"));
    }
    if let Some(min) = min_group_level
        && p.access_level.unwrap_or(0) < min
    {
        return Err(format!("requires access level {min}"));
    }
    Ok(())
}

/// The issuer's own policy.
pub fn admit(issuer: &TrustedIssuer, p: &Principal, claims: &Claims) -> Result<(), String> {
    let policy = &issuer.policy;
    if p.user.id.is_empty() {
        return Err(format!("no user id in claim {:?}", issuer.claims.user_id));
    }
    if !policy.exactly_one_role_of.is_empty() {
        // Count what the token carries, not the mapped list: a role claim given as a single
        // string counts as one.
        let roles = match lookup(claims, &issuer.claims.roles) {
            Some(Value::Array(a)) => a.len(),
            Some(Value::Str(_)) => 1,
            _ => 0,
        };
        if roles != 1 || p.user.roles.len() != 1 {
            return Err(format!(
                "exactly one role is required, the token has {roles}"
            ));
        }
        if !policy.exactly_one_role_of.contains(&p.user.roles[0]) {
            return Err(format!(
                "role {:?} is not one of the configured roles",
                p.user.roles[0]
            ));
        }
    }
    require_membership(
        p,
        &policy.any_role,
        &policy.any_group,
        policy.min_group_level,
    )?;
    if let Some(re) = &issuer.username_regex {
        let name = p.user.username.as_deref().unwrap_or("");
        if !re.is_match(name) {
            return Err("username does not match the issuer's username_pattern".into());
        }
    }
    Ok(())
}

/// Route policies for `path` that apply to this principal.
pub fn authorize(rules: &[RoutePolicy], principal: &Principal, path: &str) -> Result<(), String> {
    for rule in rules {
        let applies = path.starts_with(&rule.prefix)
            && rule
                .issuer
                .as_ref()
                .is_none_or(|i| i == &principal.issuer_name || i == &principal.issuer);
        if !applies {
            continue;
        }
        require_membership(
            principal,
            &rule.any_role,
            &rule.any_group,
            rule.min_group_level,
        )
        .map_err(|reason| format!("{} {reason}", rule.prefix))?;
    }
    Ok(())
}
