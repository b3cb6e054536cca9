"""The detectors: which strings are secrets, found by regular expressions behind a keyword pre-filter.

Three families, from most to least certain:

1. *Formats* (`TOKENS`, private keys, JWTs, URL passwords, Authorization headers): a service's own token shape
   (`ghp_` + 36, `AKIA` + 16, `-----BEGIN RSA PRIVATE KEY-----`...). A regex that starts with a literal is found by
   CPython's fast substring search; the others run only when one of their keywords occurs in the text, the way
   gitleaks pre-filters its rules.
2. *Context* (AWS secret keys, W&B and Twilio keys, Azure storage keys): a generic shape (40 base64 characters,
   40 hex) that counts only next to a name that says what it is.
3. *Assignments and entropy*: a value assigned to a password/secret/token/api-key name, or a random-looking string
   on a line that names one. Only lines holding a secret-ish keyword are looked at (at most MAX_WINDOWS of them).

Every candidate then passes the false-positive filters users of detect-secrets and gitleaks keep asking for:
placeholders (`<your-token>`, `${VAR}`, `{{ secret }}`, `%(pw)s`, `xxxx`, `changeme`, AWS's documented EXAMPLE
keys), references (`os.environ[...]`, `getpass()`, `null`), digests (`sha256:`, `--hash=`, `integrity: sha512-`,
git SHAs, UUIDs), tokenizer settings (`pad_token: "<pad>"`, `max_tokens: 512`), model ids and camelCase names.
Where two detectors claim the same text, the more specific one wins.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import enum
import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote

from mlfort.report import Severity
from mlfort.scan.secrets import rules
from mlfort.scan.secrets.entropy import is_hex, looks_like_words, looks_random, low_variety, shannon


class Style(enum.StrEnum):
    """How a chunk of text is read, which decides which detectors run and what counts as a value."""

    CODE = "code"
    """Source code: an assigned secret must be a string literal (`x = get()` is an expression, not a secret)."""
    CONFIG = "config"
    """YAML, .env, INI, properties, shell, plain text: bare values count (`PASSWORD=hunter22`)."""
    STRICT = "strict"
    """Lockfiles, minified and source-map files: only format detectors run (their hashes and blobs are noise)."""
    BINARY = "binary"
    """Printable runs pulled from a binary file: boundaries are relaxed (a length byte or an opcode may touch the
    token) and only format and context detectors run: compiled code is full of random-looking symbol names next
    to words like `key` and `token`."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One secret found in a chunk of text. `secret` is for fingerprinting only and never leaves the scanner."""

    kind: str
    """Stable machine name of what was found (`github-token`, `aws-access-key-id`, `secret-assignment`)."""
    label: str
    """What it is, for people ("GitHub personal access token")."""
    rule_id: str
    """The MLF-SEC rule it is reported under."""
    severity: Severity
    """How bad this one is (may differ from the rule's default: a Stripe test key is low)."""
    secret: str
    """The secret value itself (a private key's normalised base64 body). Hashed, never shown."""
    start: int
    """Offset in the chunk where the match begins (for line and column)."""
    end: int
    """Offset in the chunk just past the match."""
    shown: str = ""
    """A part that may be shown: the service's public prefix (`ghp_`), a PEM type. Never any random part."""
    detail: tuple[tuple[str, str], ...] = ()
    """Other non-secret facts for the evidence: the URL scheme and host, a JWT's algorithm and expiry."""
    priority: int = 50
    """Lower wins when two hits overlap: formats 10, context 20, URL/header/JWT 30, assignments 40, entropy 50."""


# ---------------------------------------------------------------------------------------------------- filters

_PLACEHOLDER_PARTS = (
    "example", "sample", "dummy", "placeholder", "changeme", "change_me", "change-me", "changeit", "redacted",
    "replace", "insert", "your", "xxxx", "****", "...", "…", "lorem", "fixme", "<", ">", "${", "{{", "}}", "%(",
    "#{", "$(", "@@", "%s", "%d",
)
_PLACEHOLDER_WORDS = frozenset({
    "password", "passwd", "pass", "pwd", "secret", "secrets", "token", "apikey", "key", "value", "string", "str",
    "default", "none", "null", "nil", "undefined", "empty", "test", "testing", "foo", "bar", "foobar", "baz",
    "hidden", "masked", "mypassword", "mysecret", "mytoken", "myapikey", "secretkey", "secretpassword",
    "supersecret", "topsecret", "notasecret", "notsecret", "notreal", "fake", "mock", "required", "optional",
    "true", "false", "yes", "no", "on", "off", "unset", "todo", "tbd", "na", "xyz", "abc", "abcdef", "qwerty",
    "secretvalue", "tokenvalue", "passwordvalue", "yoursecret", "yourtoken", "env", "environ", "auto", "prompt",
    "redacted", "removed", "omitted", "censored", "private", "public", "sensitive",
})
_SEQUENTIAL_PAIRS = 0.6
_AWS_DOC_SUFFIX = "EXAMPLE"


def normalised_words(text: str) -> str:
    """Lower case with everything but letters and digits dropped: `Your_API-Key` -> `yourapikey`."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def is_sequential(text: str) -> bool:
    """True for `abcdefgh`, `12345678`, `AbCdEfGh...`: most neighbours one apart (documentation fillers)."""
    low = text.lower()
    if len(low) < 6:
        return False
    steps = sum(1 for a, b in itertools.pairwise(low) if ord(b) - ord(a) in (1, -1))
    return steps / (len(low) - 1) >= _SEQUENTIAL_PAIRS


def is_placeholder(value: str, *, name: str = "") -> bool:
    """True when `value` is a documentation placeholder, a template reference or filler, not a real secret.

    Catches `<your-token>`, `${DB_PASSWORD}`, `{{ secret }}`, `%(pw)s`, `xxxxxxxx`, `********`, `changeme`,
    `your_api_key_here`, generic words alone (`secret`, `password`, `none`), a value equal to its own name
    (`PASSWORD=password`), sequences (`abcdef123456`) and AWS's documented EXAMPLE keys. A weak but real-looking
    password (`hunter22`, `Summer2024!`) is *not* a placeholder.
    """
    if not value:
        return True
    low = value.lower()
    if any(part in low for part in _PLACEHOLDER_PARTS):
        return True
    if value.endswith(_AWS_DOC_SUFFIX) or value.startswith("$") or value.startswith("%"):
        return True
    words = normalised_words(value)
    if not words or words in _PLACEHOLDER_WORDS:
        return True
    if name and words == normalised_words(name):
        return True
    if low_variety(value, minimum=4 if len(value) < 16 else 6):
        return True
    return is_sequential(re.sub(r"[^A-Za-z0-9]", "", value))


def _random_body(body: str, *, min_bits: float = 3.0) -> bool:
    """The random part of a prefixed token: not filler, not words, enough entropy."""
    return (not is_placeholder(body) and not low_variety(body, minimum=8 if len(body) >= 20 else 5)
            and shannon(body) >= min_bits)


# ---------------------------------------------------------------------------------------------------- formats

@dataclass(frozen=True)
class TokenFormat:
    """A token shape a service issues. The regex's group `s` is the secret; group `p` is the public prefix
    that may be shown."""

    kind: str
    label: str
    rule_id: str
    severity: Severity
    regex: re.Pattern[str]
    keywords: tuple[str, ...]
    """Lower-case literals, one of which must occur in the text for the regex to run (empty: always run). Only
    kinds in GATED use them: a regex that starts with a literal is found by CPython's fast search as quickly as
    a substring test, so gating it would only add work."""
    min_bits: float = 3.0
    """Entropy the part after the prefix needs (bits per character)."""
    lookback: int = 0
    """Characters before the match that belong to the secret, e.g. Mailchimp's `<32 hex>-us12`: the regex
    starts at the literal (which CPython searches for fast) and `before` checks what precedes it."""
    before: re.Pattern[str] | None = None
    """Must match all `lookback` characters before the match."""
    grow: int = 0
    """Up to this many further digits before `lookback` may belong to the secret (Telegram bot ids: 8-10)."""
    priority: int = 10
    check: str = ""
    """A named structural check (CHECKS) the secret must pass."""


def _fmt(kind: str, label: str, rule_id: str, severity: Severity, pattern: str, keywords: tuple[str, ...],
         *, min_bits: float = 3.0, before: str = "", lookback: int = 0, grow: int = 0,
         priority: int = 10, check: str = "") -> TokenFormat:
    return TokenFormat(kind, label, rule_id, severity, re.compile(pattern), keywords, min_bits, lookback,
                       re.compile(before) if before else None, grow, priority, check)


def _snowflake(secret: str) -> bool:
    """A Discord bot token's first part is the bot's numeric id in base64."""
    first = secret.split(".", 1)[0]
    try:
        return base64.b64decode(first + "=" * (-len(first) % 4), validate=True).decode("ascii").isdigit()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False


CHECKS = {"snowflake": _snowflake}


_C, _S = rules.CLOUD_CREDENTIAL, rules.SERVICE_TOKEN
_CRIT, _HIGH, _MED, _LOW = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW

TOKENS: tuple[TokenFormat, ...] = (
    # --- AWS
    _fmt("aws-access-key-id", "AWS access key id", _C, _HIGH,
         r"(?P<s>(?P<p>AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16})", ("akia", "asia", "abia", "acca", "a3t"),
         min_bits=2.5),
    _fmt("aws-session-token", "AWS session token", _C, _CRIT,
         r"(?P<s>(?P<p>FwoGZXIvYXdzE|IQoJb3JpZ2luX2Vj|FQoGZXIvYXdzE)[A-Za-z0-9/+=]{80,})",
         ("fwogzxivyxdze", "iqojb3jpz2lux2vj", "fqogzxivyxdze")),
    # --- Google Cloud
    _fmt("google-api-key", "Google API key", _C, _HIGH, r"(?P<s>(?P<p>AIza)[0-9A-Za-z_\-]{35})", ("aiza",)),
    _fmt("gcp-oauth-client-secret", "Google OAuth client secret", _C, _HIGH,
         r"(?P<s>(?P<p>GOCSPX-)[0-9A-Za-z_\-]{28})", ("gocspx-",)),
    _fmt("google-oauth-refresh-token", "Google OAuth refresh token", _C, _HIGH,
         r"(?P<s>(?P<p>1//0)[0-9A-Za-z_\-]{60,})", ("1//0",)),
    _fmt("google-oauth-access-token", "Google OAuth access token", _C, _MED,
         r"(?P<s>(?P<p>ya29\.)[0-9A-Za-z_\-]{50,})", ("ya29.",)),
    # --- Azure
    _fmt("azure-storage-account-key", "Azure storage account key", _C, _CRIT,
         r"(?i:(?P<p>AccountKey)\s*=\s*)(?P<s>[A-Za-z0-9+/]{86}==)", ("accountkey",)),
    _fmt("azure-shared-access-key", "Azure Service Bus / Event Hubs / IoT shared access key", _C, _CRIT,
         r"(?i:(?P<p>SharedAccessKey)\s*=\s*)(?P<s>[A-Za-z0-9+/]{42,43}=)", ("sharedaccesskey",)),
    _fmt("azure-ad-client-secret", "Azure AD (Entra ID) client secret", _C, _HIGH,
         r"(?P<s>(?P<p>Q~)[A-Za-z0-9_~.\-]{31,34})", ("q~",), before=r"[A-Za-z0-9_~.]{3}\d", lookback=4),
    _fmt("amazon-mws-key", "Amazon MWS auth token", _C, _HIGH,
         r"(?P<s>(?P<p>amzn\.mws\.)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", ("amzn.mws.",)),
    _fmt("alibaba-access-key-id", "Alibaba Cloud AccessKey id", _C, _HIGH,
         r"(?P<s>(?P<p>LTAI)[A-Za-z0-9]{20})", ("ltai",)),
    # --- source hosting and CI
    _fmt("github-token", "GitHub token", _S, _HIGH, r"(?P<s>(?P<p>gh[pousr]_)[A-Za-z0-9]{36})",
         ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    _fmt("github-fine-grained-token", "GitHub fine-grained personal access token", _S, _HIGH,
         r"(?P<s>(?P<p>github_pat_)[A-Za-z0-9]{22}_[A-Za-z0-9]{59})", ("github_pat_",)),
    _fmt("gitlab-token", "GitLab token", _S, _HIGH,
         r"(?P<s>(?P<p>(?:glpat|gldt|glrt|glcbt|glptt|glsoat|glffct|glimt|glagent|gloas|glft)-)"
         r"[0-9A-Za-z_\-]{20,}(?:\.[0-9A-Za-z_\-]{2,}){0,2})",
         ("glpat-", "gldt-", "glrt-", "glcbt-", "glptt-", "glsoat-", "glffct-", "glimt-", "glagent-", "gloas-",
          "glft-")),
    _fmt("gitlab-runner-registration-token", "GitLab runner registration token", _S, _HIGH,
         r"(?P<s>(?P<p>GR1348941)[0-9A-Za-z_\-]{20})", ("gr1348941",)),
    _fmt("artifactory-token", "JFrog Artifactory API key", _S, _HIGH, r"(?P<s>(?P<p>AKCp)[A-Za-z0-9]{69})",
         ("akcp",)),
    _fmt("artifactory-token", "JFrog Artifactory reference token", _S, _HIGH,
         r"(?P<s>(?P<p>cmVmdGtu)[A-Za-z0-9]{56})", ("cmvmdgtu",)),
    _fmt("npm-token", "npm access token", _S, _HIGH, r"(?P<s>(?P<p>npm_)[A-Za-z0-9]{36})", ("npm_",)),
    _fmt("pypi-token", "PyPI upload token", _S, _HIGH,
         r"(?P<s>(?P<p>pypi-)(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_\-]{50,})", ("pypi-ag",)),
    _fmt("docker-hub-token", "Docker Hub personal access token", _S, _HIGH,
         r"(?P<s>(?P<p>dckr_pat_)[A-Za-z0-9_\-]{27})", ("dckr_pat_",)),
    _fmt("terraform-cloud-token", "Terraform Cloud / HCP token", _S, _HIGH,
         r"(?P<s>(?P<p>\.atlasv1\.)[A-Za-z0-9_\-=]{60,70})", ("atlasv1",), before=r"[A-Za-z0-9]{14}",
         lookback=14),
    _fmt("vault-token", "HashiCorp Vault token", _S, _HIGH, r"(?P<s>(?P<p>hv[sb]\.)[A-Za-z0-9_\-]{90,})",
         ("hvs.", "hvb.")),
    _fmt("doppler-token", "Doppler token", _S, _HIGH,
         r"(?P<s>(?P<p>dp\.(?:pt|st|sa|ct|scim|audit)\.)[A-Za-z0-9]{40,44})", ("dp.",)),
    _fmt("pulumi-token", "Pulumi access token", _S, _HIGH, r"(?P<s>(?P<p>pul-)[a-f0-9]{40})", ("pul-",)),
    _fmt("atlassian-token", "Atlassian API token", _S, _HIGH, r"(?P<s>(?P<p>ATATT3)[A-Za-z0-9_\-=]{180,})",
         ("atatt3",)),
    _fmt("sentry-token", "Sentry auth token", _S, _HIGH, r"(?P<s>(?P<p>sntry[su]_)[A-Za-z0-9+/=_]{60,})",
         ("sntry",)),
    _fmt("grafana-token", "Grafana token", _S, _HIGH,
         r"(?P<s>(?P<p>glsa_)[A-Za-z0-9]{32}_[A-Fa-f0-9]{8})", ("glsa_",)),
    _fmt("grafana-token", "Grafana Cloud token", _S, _HIGH, r"(?P<s>(?P<p>glc_)[A-Za-z0-9+/]{32,400}={0,2})",
         ("glc_",)),
    _fmt("newrelic-key", "New Relic user API key", _S, _HIGH, r"(?P<s>(?P<p>NRAK-)[A-Z0-9]{27})", ("nrak-",)),
    _fmt("tailscale-key", "Tailscale key", _S, _HIGH,
         r"(?P<s>(?P<p>tskey-(?:auth|api|client|scim|webhook)-)[A-Za-z0-9]{10,}-[A-Za-z0-9]{20,})", ("tskey-",)),
    _fmt("postman-key", "Postman API key", _S, _HIGH, r"(?P<s>(?P<p>PMAK-)[a-f0-9]{24}-[a-f0-9]{34})", ("pmak-",)),
    _fmt("digitalocean-token", "DigitalOcean token", _S, _HIGH, r"(?P<s>(?P<p>do[opr]_v1_)[a-f0-9]{64})",
         ("_v1_",)),
    _fmt("heroku-key", "Heroku API key", _S, _HIGH, r"(?P<s>(?P<p>HRKU-)[A-Za-z0-9_\-]{60})", ("hrku-",)),
    # --- chat and messaging
    _fmt("slack-token", "Slack token", _S, _HIGH,
         r"(?P<s>(?P<p>xox[abposre]-)(?:\d+-)*[0-9A-Za-z]{8,}(?:-[0-9A-Za-z]+)*)", ("xox",)),
    _fmt("slack-app-token", "Slack app-level token", _S, _HIGH,
         r"(?P<s>(?P<p>xapp-)\d-[A-Z0-9]+-\d+-[a-z0-9]{32,})", ("xapp-",)),
    _fmt("slack-webhook", "Slack incoming webhook URL", _S, _HIGH,
         r"(?P<p>hooks\.slack\.com/(?:services|workflows|triggers)/)(?P<s>[A-Za-z0-9_/+\-]{30,})",
         ("hooks.slack.com",)),
    _fmt("discord-webhook", "Discord webhook URL", _S, _HIGH,
         r"(?P<p>discord(?:app)?\.com/api/webhooks/)(?P<s>\d+/[A-Za-z0-9_\-]{60,})", ("/api/webhooks/",)),
    _fmt("teams-webhook", "Microsoft Teams webhook URL", _S, _MED,
         r"(?P<p>webhook\.office\.com/webhookb2/)(?P<s>[A-Za-z0-9@\-/]{40,})", ("webhook.office.com",)),
    _fmt("discord-bot-token", "Discord bot token", _S, _HIGH,
         r"(?P<s>(?P<p>[MNO])[A-Za-z0-9]{23,25}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,38})", ("discord",),
         check="snowflake"),
    _fmt("telegram-bot-token", "Telegram bot token", _S, _HIGH, r"(?P<s>(?P<p>:AA)[0-9A-Za-z_\-]{33})", (":aa",),
         before=r"\d{8}", lookback=8, grow=2),
    _fmt("twilio-api-key", "Twilio API key SID", _S, _HIGH, r"(?P<s>(?P<p>SK)[0-9a-fA-F]{32})", (), min_bits=3.0),
    _fmt("sendgrid-key", "SendGrid API key", _S, _HIGH, r"(?P<s>(?P<p>SG\.)[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43})",
         ("sg.",)),
    _fmt("mailchimp-key", "Mailchimp API key", _S, _HIGH, r"(?P<s>(?P<p>-us)\d{1,2})", ("-us",),
         before=r"[0-9a-f]{32}", lookback=32),
    # --- payments and commerce
    _fmt("stripe-live-key", "Stripe live secret key", _S, _HIGH,
         r"(?P<s>(?P<p>(?:sk|rk)_live_)[0-9A-Za-z]{20,247})", ("sk_live_", "rk_live_")),
    _fmt("stripe-test-key", "Stripe test-mode secret key", _S, _LOW,
         r"(?P<s>(?P<p>(?:sk|rk)_test_)[0-9A-Za-z]{20,247})", ("sk_test_", "rk_test_")),
    _fmt("stripe-webhook-secret", "Stripe webhook signing secret", _S, _HIGH,
         r"(?P<s>(?P<p>whsec_)[A-Za-z0-9+/=]{32,})", ("whsec_",)),
    _fmt("shopify-token", "Shopify token", _S, _HIGH, r"(?P<s>(?P<p>shp(?:at|ca|pa|ss)_)[a-fA-F0-9]{32})",
         ("shpat_", "shpca_", "shppa_", "shpss_")),
    _fmt("square-token", "Square access token", _S, _HIGH,
         r"(?P<s>(?P<p>sq0atp-)[0-9A-Za-z_\-]{22})", ("sq0atp-",)),
    _fmt("square-token", "Square OAuth secret", _S, _HIGH, r"(?P<s>(?P<p>sq0csp-)[0-9A-Za-z_\-]{43})", ("sq0csp-",)),
    # --- AI and ML services
    _fmt("anthropic-key", "Anthropic API key", _S, _HIGH,
         r"(?P<s>(?P<p>sk-ant-(?:api|admin|oat|ort|sid)\d\d-)[A-Za-z0-9_\-]{80,120})", ("sk-ant-",)),
    _fmt("openai-key", "OpenAI API key", _S, _HIGH,
         r"(?P<s>(?P<p>sk-(?:proj|svcacct|admin|None)-)[A-Za-z0-9_\-]{40,})", ("sk-",)),
    _fmt("openai-key", "OpenAI API key", _S, _HIGH, r"(?P<s>(?P<p>sk-)[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})",
         ("t3blbkfj",)),
    _fmt("openrouter-key", "OpenRouter API key", _S, _HIGH, r"(?P<s>(?P<p>sk-or-v1-)[0-9a-f]{64})", ("sk-or-",)),
    _fmt("sk-api-key", "API secret key (sk- prefix: OpenAI-compatible services)", _S, _HIGH,
         r"(?P<s>(?P<p>sk-)[A-Za-z0-9]{32,64})", ("sk-",), priority=12),
    _fmt("huggingface-token", "Hugging Face access token", _S, _HIGH,
         r"(?P<s>(?P<p>hf_|api_org_)[A-Za-z0-9]{34})", ("hf_", "api_org_")),
    _fmt("databricks-token", "Databricks personal access token", _S, _HIGH,
         r"(?P<s>(?P<p>dapi)[0-9a-f]{32}(?:-\d)?)", ("dapi",)),
    _fmt("replicate-token", "Replicate API token", _S, _HIGH, r"(?P<s>(?P<p>r8_)[A-Za-z0-9]{37})", ("r8_",)),
    _fmt("groq-key", "Groq API key", _S, _HIGH, r"(?P<s>(?P<p>gsk_)[A-Za-z0-9]{52})", ("gsk_",)),
    _fmt("langsmith-key", "LangSmith API key", _S, _HIGH, r"(?P<s>(?P<p>lsv2_(?:pt|sk)_)[a-f0-9]{32}_[a-f0-9]{10})",
         ("lsv2_",)),
    _fmt("perplexity-key", "Perplexity API key", _S, _HIGH, r"(?P<s>(?P<p>pplx-)[A-Za-z0-9]{48})", ("pplx-",)),
    _fmt("xai-key", "xAI API key", _S, _HIGH, r"(?P<s>(?P<p>xai-)[A-Za-z0-9]{80})", ("xai-",)),
    _fmt("pinecone-key", "Pinecone API key", _S, _HIGH, r"(?P<s>(?P<p>pcsk_)[A-Za-z0-9_]{40,})", ("pcsk_",)),
    _fmt("neptune-token", "Neptune.ai API token", _S, _HIGH,
         r"(?P<s>(?P<p>eyJhcGlfYWRkcmVzcyI6)[A-Za-z0-9+/=]{40,})", ("eyjhcgkfywrkcmvzcyi6",)),
    _fmt("notion-token", "Notion integration token", _S, _HIGH,
         r"(?P<s>(?P<p>secret_)[A-Za-z0-9]{43})", ("secret_",)),
    _fmt("notion-token", "Notion integration token", _S, _HIGH, r"(?P<s>(?P<p>ntn_)[A-Za-z0-9]{40,50})", ("ntn_",)),
    _fmt("linear-key", "Linear API key", _S, _HIGH, r"(?P<s>(?P<p>lin_api_)[A-Za-z0-9]{40})", ("lin_api_",)),
    _fmt("airtable-token", "Airtable personal access token", _S, _HIGH,
         r"(?P<s>(?P<p>pat)[A-Za-z0-9]{14}\.[a-f0-9]{64})", ("pat",)),
    _fmt("mapbox-secret-token", "Mapbox secret token", _S, _HIGH,
         r"(?P<s>(?P<p>sk\.eyJ)[A-Za-z0-9_\-]{50,}\.[A-Za-z0-9_\-]{20,})", ("sk.eyj",)),
    _fmt("firebase-cloud-messaging-key", "Firebase Cloud Messaging server key", _C, _HIGH,
         r"(?P<s>(?P<p>:APA91b)[A-Za-z0-9_\-]{134})", ("apa91b",),
         before=r"AAAA[A-Za-z0-9_\-]{7}", lookback=11),
    _fmt("facebook-access-token", "Facebook / Meta access token", _S, _HIGH, r"(?P<s>(?P<p>EAA)[A-Za-z0-9]{100,})",
         ("eaa",), min_bits=4.0),
    _fmt("twitter-bearer-token", "X / Twitter bearer token", _S, _HIGH,
         r"(?P<s>(?P<p>AAAAAAAAAAAAAAAAAAAAA)[A-Za-z0-9%]{30,})", ("aaaaaaaaaaaaaaaaaaaaa",), min_bits=4.0),
    # --- keys that are not PEM
    _fmt("age-secret-key", "age secret key", rules.PRIVATE_KEY, _CRIT,
         r"(?P<s>(?P<p>AGE-SECRET-KEY-1)[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58})", ("age-secret-key-1",)),
)

_BOUNDARY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def _bounded(text: str, start: int, end: int, *, binary: bool) -> bool:
    """A token must not sit inside a longer alphanumeric run (`xAKIA...`, `...Zq`). In printable runs pulled from
    a binary file, one stray character at the very start or end of a run is allowed: it is often a length byte
    or an opcode that happens to be printable. Deeper inside a run (a symbol name such as `highs_...`) it is not."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    before_ok = before not in _BOUNDARY or (binary and (start < 2 or text[start - 2] == "\n"))
    after_ok = after not in _BOUNDARY or (binary and (end + 1 >= len(text) or text[end + 1] == "\n"))
    return before_ok and after_ok


GATED = frozenset({"aws-session-token", "azure-storage-account-key", "azure-shared-access-key", "stripe-live-key",
                   "stripe-test-key", "huggingface-token", "discord-bot-token"})
"""Formats whose regex does not start with one literal (alternatives, case-insensitive): keyword-gated."""
_KEYWORDS = sorted({k for fmt in TOKENS if fmt.kind in GATED for k in fmt.keywords}, key=lambda k: (-len(k), k))


def present_keywords(lower: str) -> set[str]:
    """The format keywords that occur in the (lower-cased) text. A substring test per keyword: CPython's
    fast search beats one big alternation regex here."""
    return {k for k in _KEYWORDS if k in lower}


def _format_hits(text: str, lower: str, style: Style) -> Iterator[Hit]:
    binary = style is Style.BINARY
    present = present_keywords(lower)
    for fmt in TOKENS:
        if fmt.kind in GATED and not any(k in present for k in fmt.keywords):
            continue
        for m in fmt.regex.finditer(text):
            start, end = m.span("s")
            prefix = m.group("p") or ""
            if fmt.lookback:
                if fmt.before is None or start < fmt.lookback or not fmt.before.fullmatch(text, start - fmt.lookback,
                                                                                            start):
                    continue
                start -= fmt.lookback
                for _ in range(fmt.grow):
                    if start > 0 and text[start - 1].isdigit():
                        start -= 1
            if start < 0 or not _bounded(text, start, end, binary=binary):
                continue
            secret = text[start:end]
            body = secret.replace(prefix, "", 1) if prefix else secret
            if is_placeholder(secret) or not _random_body(body, min_bits=fmt.min_bits):
                continue
            if fmt.check and not CHECKS[fmt.check](secret):
                continue
            shown = prefix if secret.startswith(prefix) else ""
            yield Hit(fmt.kind, fmt.label, fmt.rule_id, fmt.severity, secret, start, end, shown=shown,
                      priority=fmt.priority)


# ---------------------------------------------------------------------------------------------------- private keys

_PEM_BEGIN = re.compile(r"-{4,5} ?BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?) ?-{4,5}")
_PEM_END = re.compile(r"-{4,5} ?END ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?) ?-{4,5}")
_PEM_MAX = 64 * 1024
_B64_LINE = re.compile(r"^[A-Za-z0-9+/=]+$")
_PUTTY = re.compile(r"PuTTY-User-Key-File-\d: *(?P<alg>[\w\-@.]+)(?s:.{0,8192}?)Private-Lines: *\d+\s+"
                    r"(?P<s>[A-Za-z0-9+/=\s]{40,}?)\s*Private-(?:MAC|Hash)")
_JWK_D = re.compile(r'"d"\s*:\s*"(?P<s>[A-Za-z0-9_\-]{20,})"')


_QUOTED_LINE = re.compile(r"""^[rbuRBU]?["'`](.*?)["'`]\s*[+,;)\\]*\s*$""")


def _pem_body(raw: str) -> tuple[str, bool]:
    """The base64 body of a PEM block as written in any wrapping (real newlines, JSON `\\n` escapes, YAML block
    indentation, quoted and concatenated code lines), headers (`Proc-Type:`) and PGP checksums dropped; and
    whether it looks elided (`MIIE...`)."""
    text = raw.replace("\\r", "\n").replace("\\n", "\n").replace("\\\n", "\n")
    body: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        quoted = _QUOTED_LINE.match(line)
        if quoted:
            line = quoted.group(1)  # "MIIE..." + / 'MIIE...',  in code
        line = line.removesuffix("\\").strip()
        if not line or ":" in line or (line.startswith("=") and len(line) <= 6):
            continue
        body.append(re.sub(r"[^A-Za-z0-9+/=]", "", line))
    elided = "..." in raw or "…" in raw
    return "".join(body), elided


def _pem_hits(text: str, lower: str) -> Iterator[Hit]:
    if "private key" not in lower:
        return
    service_account = '"service_account"' in lower and '"private_key"' in lower
    # Every END marker once, then each BEGIN pairs with the next END unless another BEGIN comes first: linear
    # even for a file of nothing but BEGIN lines.
    ends = list(_PEM_END.finditer(text))
    end_at = [e.start() for e in ends]
    covered = -1
    for m in _PEM_BEGIN.finditer(text):
        if m.start() < covered:
            continue
        kind_name = m.group(1)
        i = bisect.bisect_left(end_at, m.end())
        end_m = ends[i] if i < len(ends) and ends[i].start() - m.end() <= _PEM_MAX else None
        limit = end_m.start() if end_m else min(len(text), m.end() + _PEM_MAX)
        again = _PEM_BEGIN.search(text, m.end(), limit)
        if again is not None:
            end_m, limit = None, again.start()
        raw = text[m.end():limit if end_m else min(limit, m.end() + 16384)]
        if end_m is None:
            # No END line: take the base64 lines right after BEGIN (a truncated or pasted key is still a key).
            kept = []
            for line in raw.replace("\\n", "\n").splitlines()[:200]:
                stripped = line.strip().strip("\"',;+|\\").strip()
                if kept and stripped and not _B64_LINE.match(stripped) and ":" not in stripped:
                    break
                kept.append(line)
            raw = "\n".join(kept)
        body, elided = _pem_body(raw)
        if len(body) < 64 or (elided and len(body) < 400) or shannon(body) < 4.0 or low_variety(body, minimum=20):
            continue
        finish = end_m.end() if end_m else m.end() + len(raw)
        covered = finish
        if service_account:
            yield Hit("gcp-service-account-key", "Google Cloud service account key (JSON key file)",
                      rules.CLOUD_CREDENTIAL, Severity.CRITICAL, body, m.start(), finish, shown=kind_name,
                      detail=(("key_type", kind_name),), priority=5)
        else:
            encrypted = "ENCRYPTED" in kind_name or "4,ENCRYPTED" in raw
            yield Hit("private-key", f"private key ({kind_name})", rules.PRIVATE_KEY,
                      Severity.HIGH if encrypted else Severity.CRITICAL, body, m.start(), finish, shown=kind_name,
                      detail=(("key_type", kind_name),) + ((("complete", "no"),) if end_m is None else ()),
                      priority=5)


def _other_key_hits(text: str, lower: str) -> Iterator[Hit]:
    if "putty-user-key-file" in lower:
        for m in _PUTTY.finditer(text):
            body = re.sub(r"\s+", "", m.group("s"))
            if len(body) >= 40 and shannon(body) >= 4.0:
                yield Hit("putty-private-key", "PuTTY private key", rules.PRIVATE_KEY, Severity.CRITICAL, body,
                          m.start(), m.end(), shown=f"PuTTY {m.group('alg')}", priority=5)
    if '"kty"' in lower and '"d"' in lower:
        for m in _JWK_D.finditer(text):
            window = text[max(0, m.start() - 2000): m.end() + 2000]
            if '"kty"' in window and _random_body(m.group("s"), min_bits=3.5):
                yield Hit("jwk-private-key", "JSON Web Key with its private part (d)", rules.PRIVATE_KEY,
                          Severity.CRITICAL, m.group("s"), m.start("s"), m.end("s"), shown="JWK d", priority=5)


# ---------------------------------------------------------------------------------------------------- JWT

_JWT = re.compile(r"(?P<s>eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*)")


def _b64url_json(segment: str) -> dict[str, object] | None:
    try:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(decoded)
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _jwt_hits(text: str, lower: str, *, now: float) -> Iterator[Hit]:
    if "eyj" not in lower:
        return
    for m in _JWT.finditer(text):
        token = m.group("s")
        if m.start() > 0 and text[m.start() - 1] in _BOUNDARY:
            continue
        header_seg, payload_seg, signature = token.split(".", 2)
        header = _b64url_json(header_seg)
        if header is None or not ({"alg", "typ", "kid"} & header.keys()):
            continue
        payload = _b64url_json(payload_seg) or {}
        if payload.get("sub") == "1234567890" and payload.get("name") == "John Doe":
            continue  # the jwt.io example token, printed in countless tutorials
        role = str(payload.get("role", ""))
        if role == "anon" and "supabase" in str(payload.get("iss", "")) + text[max(0, m.start() - 300):m.start()]:
            continue  # a Supabase anon key is public by design (the service_role key is not)
        alg = str(header.get("alg", "?"))[:20]
        detail: list[tuple[str, str]] = [("alg", alg)]
        severity = Severity.MEDIUM
        exp = payload.get("exp")
        if isinstance(exp, (int, float)) and not isinstance(exp, bool):
            stamp = time.strftime("%Y-%m-%d", time.gmtime(max(0, min(exp, 253402300799))))
            detail.append(("expires", stamp))
            if exp < now:
                severity = Severity.LOW
        if not signature:
            detail.append(("signed", "no"))
        if role == "service_role":
            severity = Severity.HIGH
        yield Hit("jwt", "JSON Web Token", rules.JWT, severity, token, m.start(), m.end(), shown="eyJ",
                  detail=tuple(detail), priority=30)


# ---------------------------------------------------------------------------------------------------- URL passwords

_URL_CRED = re.compile(
    r"://(?P<user>[^\s:/?#@'\"<>\[\]{}\\]{0,128}):"
    r"(?P<s>[^\s/'\"<>\\,]{1,256}?)@(?P<host>[A-Za-z0-9._\-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?"
    r"(?=[/?#\s'\"<>,;)\]}`|]|$)"
)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,30}$")
_EXAMPLE_HOST = re.compile(r"(?:^|\.)(?:example\.(?:com|org|net)|example|test|invalid|your[-_a-z]*|hostname|host)$",
                           re.IGNORECASE)


def _url_hits(text: str, lower: str) -> Iterator[Hit]:
    if "://" not in text or "@" not in text:
        return
    for m in _URL_CRED.finditer(text):
        scheme_m = _SCHEME.search(text, max(0, m.start() - 31), m.start())
        if scheme_m is None:
            continue
        password, user, host = m.group("s"), m.group("user"), m.group("host")
        plain = unquote(password)
        if len(plain) < 6 or is_placeholder(plain, name="password") or plain == unquote(user):
            continue
        if is_placeholder(plain, name=user) or plain.startswith(("{", "[")) or _EXAMPLE_HOST.search(host):
            continue
        if plain.lower() in {"x-oauth-basic", "x-access-token", "oauth2"}:
            continue
        scheme = scheme_m.group(0).lower()
        yield Hit("url-password", f"password in a {scheme}:// URL", rules.URL_PASSWORD, Severity.HIGH, password,
                  m.start("s"), m.end("s"), detail=(("scheme", scheme), ("host", host[:100])), priority=30)


# ---------------------------------------------------------------------------------------------------- headers

_AUTH_HEADER = re.compile(
    r"(?i:authorization)[\"']?\s*[:=,]\s*[\"']?(?i:(?P<type>basic|bearer|token))\s+(?P<s>[A-Za-z0-9._~+/=\-]{8,})"
)
_KEY_HEADER = re.compile(
    r"(?<![\w:.\-])(?i:(?P<name>x-api-key|api-key|x-auth-token|private-token|x-access-token|"
    r"ocp-apim-subscription-key|x-goog-api-key|x-functions-key))[\"']?\s*[:=,]\s*[\"']?"
    r"(?P<s>[A-Za-z0-9._~+/=\-]{16,})"
)
_CURL_USER = re.compile(r"(?:\s|^)(?:-u|--user)\s+[\"']?(?P<user>[^\s:'\"$]+):(?P<s>[^\s'\"]+)")


def _header_hits(text: str, line_start: int, line: str, lower: str) -> Iterator[Hit]:
    """Authorization and API-key headers written out with a literal value, on one keyword line."""
    if "authorization" in lower:
        for m in _AUTH_HEADER.finditer(line):
            value, kind = m.group("s"), m.group("type").lower()
            if kind == "basic":
                try:
                    decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode("utf-8")
                except (ValueError, binascii.Error, UnicodeDecodeError):
                    continue
                user, _, password = decoded.partition(":")
                if not password or is_placeholder(password, name=user) or password == user:
                    continue
            elif (is_placeholder(value) or looks_like_words(value) or shannon(value) < 3.0 or len(value) < 12
                  or _JWT.fullmatch(value)):
                continue  # a JWT is judged (and reported) by the JWT detector
            yield Hit(f"authorization-{kind}", f"HTTP {kind.title()} Authorization credentials", rules.AUTH_HEADER,
                      Severity.HIGH, value, line_start + m.start("s"), line_start + m.end("s"), shown=kind.title(),
                      priority=30)
    if "key" in lower or "token" in lower:
        for m in _KEY_HEADER.finditer(line):
            value = m.group("s")
            if is_placeholder(value) or looks_like_words(value) or shannon(value) < 3.0:
                continue
            yield Hit("api-key-header", f"literal {m.group('name')} header value", rules.AUTH_HEADER, Severity.HIGH,
                      value, line_start + m.start("s"), line_start + m.end("s"), priority=35)


def _curl_hits(text: str, lower: str) -> Iterator[Hit]:
    if "curl" in lower:
        for m in _CURL_USER.finditer(text):
            password, user = m.group("s"), m.group("user")
            if len(password) < 4 or is_placeholder(password, name=user) or password == user:
                continue
            yield Hit("curl-user-password", "password in a curl --user argument", rules.AUTH_HEADER, Severity.HIGH,
                      password, m.start("s"), m.end("s"), priority=30)


_AUTH_TUPLE = re.compile(
    r"(?:\bauth\s*=\s*[(\[]|\b(?:HTTPBasicAuth|HTTPDigestAuth|HTTPProxyAuth|BasicAuth|DigestAuth)\s*\()\s*"
    r"[rbuRBU]?(?P<q1>[\"'])(?P<user>[^\"'\n]{1,100})(?P=q1)\s*,\s*[rbuRBU]?(?P<q2>[\"'])(?P<s>[^\"'\n]{4,200})(?P=q2)")


def _auth_tuple_hits(text: str, lower: str) -> Iterator[Hit]:
    """A literal (user, password) pair handed to an HTTP client: `auth=("u", "p")`, `HTTPBasicAuth("u", "p")`."""
    if "auth" in lower:
        for m in _AUTH_TUPLE.finditer(text):
            password, user = m.group("s"), m.group("user")
            if (is_placeholder(password, name=user) or password == user or not credential_like(password)
                    or ("{" in password and "}" in password)):  # a format template such as "{pw}"
                continue
            yield Hit("auth-tuple-password", "password in an HTTP client's auth argument", rules.AUTH_HEADER,
                      Severity.HIGH, password, m.start("s"), m.end("s"), priority=30)


# ---------------------------------------------------------------------------------------------------- assignments

_LINE_KEYWORDS = re.compile(r"pass|pwd|secret|token|key|cred|auth|wandb|twilio|identified|sig=")
_ASSIGN = re.compile(
    r"(?P<name>--?[A-Za-z][\w\-]*|[A-Za-z_][\w.\-]*)"
    r"(?P<close>[\"'`]?\]?[\"'`]?)"
    r"(?:\s*:\s*[A-Za-z_][\w\[\]., |]*?(?=\s*=))?"
    r"\s*(?P<op>:=|=>|<-|=(?![=~])|:(?![:/\\])|,)[ \t]*"
    r"(?P<value>(?P<pre>[rbfuRBFU]{1,2}(?=[\"']))?\"(?:[^\"\\\n]|\\.)*\"|"
    r"(?P<pre2>[rbfuRBFU]{1,2}(?=['\"]))?'(?:[^'\\\n]|\\.)*'|`[^`\n]*`|[^\s\"'`,;]+)"
)
_SPACED = re.compile(
    r"(?:^|\s)(?:(?:ENV|ARG)\s+(?P<env>[A-Za-z_]\w*)|(?P<flag>--?[A-Za-z][\w\-]*)|(?P<netrc>password))"
    r"[ \t]+(?P<value>\"[^\"\n]*\"|'[^'\n]*'|[^\s\"'`]+)"
)
_SQL_PASSWORD = re.compile(r"(?i:(?:create|alter)\s+(?:user|role|login)\b.{0,200}?(?:identified\s+by|password\s*=?)"
                           r"|set\s+password\s+for\s+\S+\s*=)\s*(?P<value>'[^'\n]+'|\"[^\"\n]+\")")
_K8S_ENV = re.compile(r"(?m)^[ \t]*-?[ \t]*name:[ \t]*[\"']?(?P<name>[\w.\-]+)[\"']?[ \t]*\r?\n"
                      r"[ \t]*value:[ \t]*(?P<value>\"[^\"\n]*\"|'[^'\n]*'|[^\s#]+)")
_XML_ELEMENT = re.compile(r"<(?P<name>[\w.\-:]+)>(?P<value>[^<\s]{6,200})</(?P=name)>")

_SECRET_NAME = re.compile(
    r"(?:^|_)pass(?:$|_)|pass(?:word|wd|phrase|code)|passwort|contrasena|mot_de_passe|(?:^|_)pwd(?:$|_)"
    r"|secret|token|api_?key|access_?key|auth_?key|private_?key|client_?key|signing_?key|encryption_?key"
    r"|master_?key|account_?key|credential|(?:^|_)auth$|connection_?string|conn_?str|sas_?key|(?:^|_)psk$"
)
_NOT_SECRET_NAME = re.compile(
    r"tokeniz|(?:^|_)(?:pad|eos|bos|unk|sep|cls|mask|special|additional|added|start|end|stop|begin|image|img|audio"
    r"|video|vision|boi|eoi|fim|think|tool|chat|sentence|word|max|min|num|n|total|prompt|completion|input|output"
    r"|context|new|extra|reserved|decoder_start|vocab|next|prev|page|continuation|cursor|pagination|sample|gen"
    r"|generated|count|per|cached|cache|reasoning)_?tokens?(?:_|$)"
    r"|(?:^|_)(?:id|ids|type|types|count|limit|len|length|size|budget|usage|url|uri|endpoint|file|filename|path|dir"
    r"|directory|env|var|name|names|ref|arn|version|policy|pattern|regex|field|label|header|hint|help|reset|expiry"
    r"|expires|expiration|ttl|timeout|time|at|in|hash|hashed|digest|enabled|enable|required|rotation|manager"
    r"|store|provider|backend|kind|mount|index|position|pos|prefix|suffix|format|fmt|location|source|template"
    r"|scope|scopes|audience|issuer|algorithm|alg|method|mode|strategy|rounds|strength|validator|validation"
    r"|validity|length_min|placeholder|message|msg|error|text|title|description|desc|prompt|question|input"
    r"|class|cls|fn|func|function|callback|handler|getter|setter|loader|check|checker|required|sha|md5|hex"
    r"|salt|iv|nonce|public|pub|fingerprint|thumbprint|schema|spec|param|arg|args|option|options|flag|flags"
    r"|min|max|policy|rule|rules|generator|reader|length|confirm|confirmation|field_name|key_name|secret_name"
    r"|storage|store_path|service|vault|kms|provider_name|selector|ref_name|mapping|map|list|set|dict|display)$"
    r"|(?:^|_)(?:public|publishable|pub)_|secrets?_?manager|secrets?_?store|secret_?key_?ref"
    r"|client_(?:request_)?token|verification_token|lifecycle_action_token|(?:^|_)(?:last_)?(?:used|changed|updated"
    r"|created|modified|set)(?:_at|_on|_date|_time)?$"
    r"|(?:^|_)(?:is|has|use|show|hide|allow|require|requires|enable|disable|no|skip|with|without|should|can"
    r"|must|get|set|check|validate|verify|reset|forgot|change|update|generate|create|read|load|prompt|ask)_"
)
_REFERENCE = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$")
"""A bare dotted name is an expression or a reference (`settings.PASSWORD`, `secrets.db`), not a value."""
_NOT_A_VALUE = re.compile(
    r"^(?:true|false|yes|no|on|off|null|none|nil|undefined|~|\[\]|\{\})$"
    r"|^(?:https?|s3|gs|file|ftp)://"
    r"|^(?:\.{0,2}/|~/)[\w.\-/]*$"  # a path
    r"|^#[0-9a-f]{3,8}$|^\d{4}-\d\d-\d\d(?:[T ][\d:.]+Z?)?$"  # colours, timestamps
    r"|^data:|^\$2[abxy]\$|^\{(?:SSHA|SHA|SMD5|CRYPT|bcrypt)\}|^(?:pbkdf2|argon2|scrypt|sha256|sha512)[\$:_]"
    r"|^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$",  # an environment variable's name: password: DB_PASSWORD
    re.IGNORECASE,
)
_UNQUOTED_LINE = re.compile(r"^\s*(?:%env|%set_env|!|export\s|set\s|ENV\s|ARG\s|\$env:)", re.IGNORECASE)


def snake(name: str) -> str:
    """`apiKey` / `API-Key` / `--api-key` / `config.db.password` -> `api_key` / `api_key` / `api_key` / `password`."""
    name = name.strip("-$@:\"'`[]")
    name = name.rsplit(".", 1)[-1]
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def is_secret_name(name: str) -> bool:
    """True when a setting's name says it holds a secret (`DB_PASSWORD`, `apiKey`, `client-secret`, `hf_token`)
    and not something about one (`token_url`, `password_hash`, `max_new_tokens`, `pad_token`, `secretName`)."""
    s = snake(name)
    return bool(s) and bool(_SECRET_NAME.search(s)) and not _NOT_SECRET_NAME.search(s)


def _unquote(value: str) -> tuple[str, bool, int]:
    """(inner text, was it quoted, offset of the inner text in `value`)."""
    pre = re.match(r"[rbfuRBFU]{1,2}(?=[\"'])", value)
    skip = pre.end() if pre else 0
    body = value[skip:]
    if len(body) >= 2 and body[0] == body[-1] and body[0] in "\"'`":
        return body[1:-1], True, skip + 1
    return value, False, 0


def usable_value(value: str, name: str, *, quoted: bool, style: Style, line: str) -> bool:
    """True when an assigned value is a literal secret: not empty, not a reference, not a placeholder, not prose.

    Code needs a string literal (`password = get_password()` is not a secret); configs may be bare
    (`PASSWORD=hunter22`). Either way the value must look like a credential, not a label: a digit, a symbol or
    a random mix of cases, so `auth: required`, `TOKEN_COMMENT: "comment"`, `SECRET_KEY = 'AWSSecretKey'` and
    `private_key="key.priv"` are not secrets.
    """
    if len(value) < 6 or len(value) > 1000 or "\n" in value:
        return False
    if any(c.isspace() for c in value):
        return False  # prose, messages and labels ("Enter your password")
    if _NOT_A_VALUE.search(value) or is_placeholder(value, name=name):
        return False
    if not quoted:
        if style is Style.CODE and not _UNQUOTED_LINE.match(line):
            return False
        if _REFERENCE.match(value):
            return False
        if value[0] in "([{<&*!@%$\\/" or value.endswith(("(", ")", ":")) or "(" in value:
            return False
    elif "{" in value and "}" in value:
        return False  # f-string / format template
    return credential_like(value)


_FILE_NAME = re.compile(r"^[\w.\-]+\.(?:pem|key|priv|pub|crt|cer|der|p12|pfx|jks|json|ya?ml|txt|env|ini|cfg|conf|toml"
                        r"|gpg|asc|kdbx|keystore|secret|secrets|token)$", re.IGNORECASE)
_MODULE_PATH = re.compile(r"^[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+$")
_LABEL_WORDS = re.compile(r"passw|secret|token|credential|(?:^|[^a-z])auth|bearer"
                          r"|(?:access|secret|private|public|api|signing|master|encryption|account)[_\-]?key",
                          re.IGNORECASE)
_CONSTANT_CODE = re.compile(r"[A-Z]+(?:[-_.:][A-Z0-9]+)+")
_IDENTIFIER_VALUE = re.compile(r"^_*[A-Za-z]+(?:_+[A-Za-z]+)*_*$")


def credential_like(value: str) -> bool:
    """True when a value could be a credential rather than a label, a file name or a module path: it has a
    digit or a symbol, or mixes cases without spelling words, and does not name a secret itself
    (`RpcGroupManagementToken`, `role-secret-key`, `__null_token_value__`)."""
    if _FILE_NAME.match(value) or _MODULE_PATH.match(value) or _LABEL_WORDS.search(value):
        return False
    has_digit = any(c.isdigit() for c in value)
    has_symbol = any(not c.isalnum() for c in value)
    mixed = value.lower() != value and value.upper() != value
    if not (has_digit or has_symbol or mixed) or _IDENTIFIER_VALUE.match(value):
        return False
    if value[0] in "[(^" and value[-1] in "])$*+?":
        return False  # a regular expression
    if _CONSTANT_CODE.fullmatch(value):
        return False  # MLF-SEC-001, ERR_TOKEN_42: codes and ids, not credentials
    if not has_digit and not has_symbol and looks_like_words(value):
        return False  # serverAuth, IAmSensitive, sourceName
    return not (has_symbol and not has_digit and re.fullmatch(r"[A-Za-z]+(?:[_\-.][A-Za-z]+)+", value)
                and all(looks_like_words(p) or p.islower() or p.isupper()
                        for p in re.split(r"[_\-.]", value)))  # buildkite-agent, HTTP_PROXY


_NAME_HINT = re.compile(r"pass|pwd|secret|token|credential|auth|conn|sas|psk|(?:api|access|private|client|signing"
                        r"|encryption|master|account)[_.\-]?key")
"""Substrings every secret-ish name holds (see _SECRET_NAME), to find where an assignment could start."""
_SETTER = re.compile(r"(?:setdefault|getenv|get|setenv|putenv|setProperty|setItem|put|set|Secret|SecretStr)"
                     r"\s*\(\s*[\"'`]$")


def _assignment_hits(text: str, line_start: int, line: str, style: Style) -> Iterator[Hit]:
    if _DOCUMENTATION.search(line.lower()):
        return  # "password: Secr3t! (example)": documentation; format detectors still read the line
    # Try an assignment only where a secret-ish name starts: at each hint, back up to the start of the
    # identifier holding it. Assignments may nest (`url=jdbc:...?password=X`, `Config{User: "u", Password: "p"}`),
    # which a left-to-right scan of whole matches would miss.
    tried: set[int] = set()
    taken_until = -1
    for hint in _NAME_HINT.finditer(line.lower()):
        begin = hint.start()
        while begin > 0 and (line[begin - 1].isalnum() or line[begin - 1] in "_.-"):
            begin -= 1
        if begin in tried or begin < taken_until:
            continue
        tried.add(begin)
        m = _ASSIGN.match(line, begin)
        if m is None:
            continue
        name, op, close = m.group("name"), m.group("op"), m.group("close")
        if op == "," and (close[:1] not in ("\"", "'", "`") or not _SETTER.search(line, 0, m.start())):
            continue  # only setdefault("TOKEN", "v")-style pairs; tuples, lists and calls are not assignments
        if not is_secret_name(name):
            continue
        if m.start() > 0 and line[m.start() - 1] in "?&" and ("badge" in line or ".svg" in line):
            continue  # codecov-style ?token= in a README badge is a public graph token
        if m.start() > 0 and line[m.start() - 1] in ":/#\\":
            continue  # AWS::IAM::AccessKey, alias/aws/secretsmanager, api#httpBearerAuth: a name inside a name
        if style is Style.CODE and (m.group("pre") or m.group("pre2") or "").lower().count("r"):
            continue  # r"..." in code is a pattern or a path
        raw = m.group("value")
        value, quoted, offset = _unquote(raw)
        if not usable_value(value, name, quoted=quoted, style=style, line=line):
            continue
        start = line_start + m.start("value") + offset
        taken_until = m.end()
        yield Hit("secret-assignment", f"value assigned to `{snake(name)[:60]}`", rules.ASSIGNED_SECRET,
                  Severity.MEDIUM, value, start, start + len(value), priority=40)
    for m in _SPACED.finditer(line):
        name = m.group("env") or m.group("flag") or m.group("netrc") or ""
        if m.group("netrc") and not re.search(r"\b(?:machine|login|default)\b", text[max(0, line_start - 200):
                                                                                  line_start + len(line)]):
            continue
        if not is_secret_name(name):
            continue
        value, quoted, offset = _unquote(m.group("value"))
        if not usable_value(value, name, quoted=quoted, style=Style.CONFIG, line=line):
            continue
        start = line_start + m.start("value") + offset
        yield Hit("secret-assignment", f"value given to `{snake(name)[:60]}`", rules.ASSIGNED_SECRET,
                  Severity.MEDIUM, value, start, start + len(value), priority=40)
    for m in _SQL_PASSWORD.finditer(line):
        value, _, offset = _unquote(m.group("value"))
        if len(value) >= 4 and not is_placeholder(value) and "{" not in value:
            start = line_start + m.start("value") + offset
            yield Hit("sql-password", "password in a SQL statement", rules.ASSIGNED_SECRET, Severity.MEDIUM, value,
                      start, start + len(value), priority=40)
    for m in _XML_ELEMENT.finditer(line):
        if is_secret_name(m.group("name")) and usable_value(m.group("value"), m.group("name"), quoted=True,
                                                              style=style, line=line):
            start = line_start + m.start("value")
            yield Hit("secret-assignment", f"value of <{snake(m.group('name'))[:60]}>", rules.ASSIGNED_SECRET,
                      Severity.MEDIUM, m.group("value"), start, start + len(m.group("value")), priority=40)


# ---------------------------------------------------------------------------------------------------- context

_ENTROPY_CONTEXT = re.compile(
    r"secret|token(?!iz)|passw|pwd|api[_\-]?key|apikey|access[_\-]?key|private[_\-]?key|auth(?!or)|credential"
    r"|bearer|signature|(?:^|[^a-z])key(?:[^a-z]|$)|[_\-]key(?:[^a-z]|$)"
)
_NOT_ENTROPY_CONTEXT = re.compile(
    r"integrity|checksum|digest|publishable|sha1|sha256|sha384|sha512|md5|blake2|hash|commit|revision|etag|fingerprint"
    r"|thumbprint|uuid|guid|nonce|salt|public|pubkey|certificate|cert_|_cert|(?:cache|sort|primary|partition"
    r"|foreign|object|s3|dict|row|lookup|idempotency|routing|shard|map|index|group|unique|composite|join|dedup"
    r"|sign_in|data|file|bucket|redis|metric|column|table|task|job|state|config|model|feature)[_\-]?key"
)
_CANDIDATE = re.compile(r"(?<![A-Za-z0-9+/=_\-])[A-Za-z0-9+/_\-]{20,}={0,2}(?![A-Za-z0-9+/=_\-])")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HASH_PREFIX = re.compile(r"(?:sha\d*|md5|blake2[bs]?|sha3[_-]\d+|base64|crc32c?)[:=\-,]?\s*$", re.IGNORECASE)
_AWS_SECRET = re.compile(
    r"(?i:aws[\w.\-]{0,24}secret[\w.\-]{0,24}|secret[_\-]?access[_\-]?key)[\"'`\]]*\s*(?::=|=>|[:=,]|\s)\s*"
    r"[\"'`]?(?P<s>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
)
_AWS_SESSION = re.compile(
    r"(?i:aws[_\-]?session[_\-]?token|aws[_\-]?security[_\-]?token|sessiontoken)[\"'`\]]*\s*[:=,]\s*[\"'`]?"
    r"(?P<s>[A-Za-z0-9/+=]{100,})"
)
_BARE40 = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_WANDB = re.compile(
    r"(?i:wandb[\w.\-]{0,30}(?:key|token|login)[\w\-]{0,10}|wandb\.login\s*\(\s*(?:key\s*=\s*)?)"
    r"[\"'`\]]*\s*(?:[:=,(]|\s)?\s*[\"'`]?(?P<s>(?:local-)?[0-9a-f]{40})(?![0-9a-zA-Z])"
)
_WANDB_NETRC = re.compile(r"machine\s+api\.wandb\.ai\s+login\s+\S+\s+password\s+(?P<s>(?:local-)?[0-9a-f]{40})\b")
_TWILIO = re.compile(r"(?i:twilio[\w.\-]{0,20}(?:auth)?[_\-]?(?:token|secret))[\"'`\]]*\s*[:=,]\s*[\"'`]?"
                     r"(?P<s>[0-9a-f]{32})(?![0-9a-zA-Z])")
_AZURE_KEY = re.compile(r"(?<![A-Za-z0-9+/])(?P<s>[A-Za-z0-9+/]{86}==)(?![A-Za-z0-9+/=])")
_KAGGLE = re.compile(r'"key"\s*:\s*"(?P<s>[0-9a-f]{32})"')
_SAS = re.compile(r"(?i:[?&;\"'\s]sig=)(?P<s>(?:[A-Za-z0-9+/]|%2[BbFf]){40,}(?:=|%3[Dd]){0,2})")


_NAME_BEFORE = re.compile(r"([A-Za-z_][\w.\-]*)[\"'`\]]*\s*(?::=|=>|[:=])\s*[rbuRBU]?[\"'`]?$")


_DOCUMENTATION = re.compile(r"example|\be\.g\.|\bsample\b|\bdummy\b|\bfake\b|\bplaceholder")
_PROSE_WORD = re.compile(r"(?<![\w/.])[A-Za-z][a-z]{2,}(?![\w/.])")


def _entropy_hits(line_start: int, line: str, lower: str, style: Style) -> Iterator[Hit]:
    candidates = [m for m in _CANDIDATE.finditer(line) if looks_random(m.group(0))]
    if not candidates or _DOCUMENTATION.search(lower) or len(_PROSE_WORD.findall(line)) >= 8:
        return  # "For example: cluster-ABCD1234...", descriptions and sentences are not where keys are kept
    # The keyword must be in the text around the candidates, not inside one of them (`TpWD8w` is not "pwd").
    context = lower
    for m in candidates:
        context = context[:m.start()] + " " * (m.end() - m.start()) + context[m.end():]
    if not _ENTROPY_CONTEXT.search(context) or _NOT_ENTROPY_CONTEXT.search(context):
        return
    jwts = [j.span() for j in _JWT.finditer(line)] if "eyJ" in line else []
    in_url = "://" in line
    for m in candidates:
        value = m.group(0)
        if any(a <= m.start() < b for a, b in jwts):
            continue  # a JWT's segments: the JWT detector decides about the whole token
        before = line[max(0, m.start() - 12):m.start()]
        if _HASH_PREFIX.search(before) or _UUID.match(value) or "base64," in before:
            continue
        if in_url and before.endswith(("/", "#", "@")):
            continue  # a path segment or commit in a URL (blob/<sha>/..., packages/<hash>/...)
        if is_placeholder(value) or _path_or_id(value) or _LABEL_WORDS.search(value) or looks_like_words(value):
            continue  # S3InvalidAccessKeyIdError, MLKEM768X25519PrivateKey: names, not keys
        after = line[m.end():m.end() + 2]
        if after[:1] == "(" or before.endswith((".", "->", "::", "&", "*", "#")):
            continue  # a call, a member, a pointer: code identifiers (XXH128_hashFromCanonical(...))
        if before.endswith("[") and after[:1] == "]":
            continue  # a regular expression's character class (an alphabet, not a key)
        named = _NAME_BEFORE.search(line, 0, m.start())
        if named and _NOT_SECRET_NAME.search(snake(named.group(1))):
            continue  # private_key_id, token_hash, secret_name: about a secret, not one
        yield Hit("high-entropy-string", "high-entropy string next to a secret keyword", rules.HIGH_ENTROPY,
                  Severity.MEDIUM, value, line_start + m.start(), line_start + m.start() + len(value), priority=50,
                  detail=(("entropy", f"{shannon(value):.2f}"), ("charset", "hex" if is_hex(value) else "base64")))


def _path_or_id(value: str) -> bool:
    """`meta-llama/Llama-2-7b-hf`, `org/repo-name_v2`: short word-ish segments joined by / - _ (model ids and
    paths), unlike random keys whose pieces between separators are long and mixed."""
    parts = [p for p in re.split(r"[/\-_]", value) if p]
    if len(parts) < 2:
        return False
    mixed = sum(1 for p in parts if len(p) > 12 or (any(c.isdigit() for c in p) and any(c.isupper() for c in p)
                                                     and any(c.islower() for c in p)))
    return mixed <= 1 and all(len(p) <= 16 for p in parts)


def _context_hits(text: str, line_start: int, line: str, lower: str) -> Iterator[Hit]:
    if "secret" in lower:
        for m in _AWS_SECRET.finditer(line):
            value = m.group("s")
            if not is_placeholder(value) and looks_random(value) and not is_hex(value):
                yield Hit("aws-secret-access-key", "AWS secret access key", rules.CLOUD_CREDENTIAL,
                          Severity.CRITICAL, value, line_start + m.start("s"), line_start + m.end("s"), priority=20)
    if "token" in lower:
        for m in _AWS_SESSION.finditer(line):
            value = m.group("s")
            if not is_placeholder(value) and shannon(value) >= 4.5:
                yield Hit("aws-session-token", "AWS session token", rules.CLOUD_CREDENTIAL, Severity.CRITICAL,
                          value, line_start + m.start("s"), line_start + m.end("s"), priority=20)
    if "wandb" in lower:
        for m in _WANDB.finditer(line):
            value = m.group("s")
            if _random_body(value.removeprefix("local-"), min_bits=3.0):
                yield Hit("wandb-api-key", "Weights & Biases API key", rules.SERVICE_TOKEN, Severity.HIGH, value,
                          line_start + m.start("s"), line_start + m.end("s"), priority=20)
    if "twilio" in lower:
        for m in _TWILIO.finditer(line):
            if _random_body(m.group("s"), min_bits=3.0):
                yield Hit("twilio-auth-token", "Twilio auth token", rules.SERVICE_TOKEN, Severity.HIGH, m.group("s"),
                          line_start + m.start("s"), line_start + m.end("s"), priority=20)
    if "azure" in lower or "storage" in lower or "account" in lower:
        for m in _AZURE_KEY.finditer(line):
            if looks_random(m.group("s")):
                yield Hit("azure-storage-account-key", "Azure storage account key", rules.CLOUD_CREDENTIAL,
                          Severity.CRITICAL, m.group("s"), line_start + m.start("s"), line_start + m.end("s"),
                          priority=20)
    if "sig=" in lower and "sv=" in lower and re.search(r"[?&;]s[ept]=|[?&;]srt?=|[?&;]ss=", lower):
        for m in _SAS.finditer(line):
            value = m.group("s")
            if shannon(unquote(value)) >= 4.0:
                yield Hit("azure-sas-token", "Azure shared access signature (SAS) token", rules.CLOUD_CREDENTIAL,
                          Severity.HIGH, value, line_start + m.start("s"), line_start + m.end("s"), shown="sig=",
                          priority=20)


def _chunk_context_hits(text: str, lower: str, hits: list[Hit]) -> Iterator[Hit]:
    """Context that spans lines: an AWS secret near its key id, a W&B .netrc entry, a kaggle.json, k8s env."""
    ids = [h for h in hits if h.kind == "aws-access-key-id"]
    starts = line_starts(text) if ids else []
    for h in ids:
        line_no = bisect.bisect_right(starts, h.start) - 1
        lo = starts[max(0, line_no - 4)]
        hi = starts[line_no + 5] if line_no + 5 < len(starts) else len(text)
        for m in _BARE40.finditer(text, lo, hi):
            value = m.group(0)
            if looks_random(value) and not is_hex(value) and not is_placeholder(value) and not _path_or_id(value):
                yield Hit("aws-secret-access-key", "AWS secret access key", rules.CLOUD_CREDENTIAL,
                          Severity.CRITICAL, value, m.start(), m.end(), priority=21)
    if "api.wandb.ai" in lower:
        for m in _WANDB_NETRC.finditer(text):
            if _random_body(m.group("s").removeprefix("local-")):
                yield Hit("wandb-api-key", "Weights & Biases API key", rules.SERVICE_TOKEN, Severity.HIGH,
                          m.group("s"), m.start("s"), m.end("s"), priority=20)
    if '"username"' in lower and '"key"' in lower:
        for m in _KAGGLE.finditer(text):
            if _random_body(m.group("s")):
                yield Hit("kaggle-api-key", "Kaggle API key (kaggle.json)", rules.SERVICE_TOKEN, Severity.HIGH,
                          m.group("s"), m.start("s"), m.end("s"), priority=20)


def _k8s_env_hits(text: str, lower: str) -> Iterator[Hit]:
    if "value:" not in lower:
        return
    for m in _K8S_ENV.finditer(text):
        name = m.group("name")
        if not is_secret_name(name):
            continue
        value, quoted, offset = _unquote(m.group("value"))
        line_start = text.rfind("\n", 0, m.start("value")) + 1
        line = text[line_start:text.find("\n", m.start("value")) if "\n" in text[m.start("value"):] else len(text)]
        if usable_value(value, name, quoted=quoted, style=Style.CONFIG, line=line):
            start = m.start("value") + offset
            yield Hit("secret-assignment", f"value of environment variable `{snake(name)[:60]}`",
                      rules.ASSIGNED_SECRET, Severity.MEDIUM, value, start, start + len(value), priority=40)


# ---------------------------------------------------------------------------------------------------- driver

_LONG_LINE = 2048
_WINDOW_BEFORE, _WINDOW_AFTER = 256, 1024


def line_starts(text: str) -> list[int]:
    """Offsets where each line of `text` starts."""
    starts = [0]
    find = text.find
    i = find("\n")
    while i >= 0:
        starts.append(i + 1)
        i = find("\n", i + 1)
    return starts


def line_windows(text: str, lower: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each piece of text worth a closer look: lines that hold a secret-ish keyword; for very
    long lines (minified code, one-line JSON), a window around each keyword instead of the whole line."""
    line_end = -1
    last_window_end = -1
    start = end = -1
    for m in _LINE_KEYWORDS.finditer(lower):
        at = m.start()
        if at <= line_end:
            continue  # this line was yielded whole already
        if at > end:  # a new line: find its bounds (searching back no further than the last one: linear)
            start = text.rfind("\n", max(end, 0), at) + 1
            end = text.find("\n", at)
            end = len(text) if end < 0 else end
        if end - start <= _LONG_LINE:
            line_end = end
            yield start, end
            continue
        if at < last_window_end:
            continue
        w_start = max(start, at - _WINDOW_BEFORE)
        w_end = min(end, m.end() + _WINDOW_AFTER)
        last_window_end = w_end
        yield w_start, w_end


MAX_WINDOWS = 200_000
"""Keyword lines looked at closely per chunk. A file of nothing but keywords (hostile, or generated) would
otherwise take minutes; past this only the format, key, URL and JWT detectors read the rest."""


def find_secrets(text: str, style: Style = Style.CONFIG, *, now: float | None = None,
                 notes: list[str] | None = None) -> list[Hit]:
    """Every secret in `text`, each once: overlapping claims resolved in favour of the most specific detector,
    sorted by position. `now` (epoch seconds) decides whether a JWT has expired. When MAX_WINDOWS is reached, a
    sentence saying so is appended to `notes`."""
    if not text:
        return []
    lower = text.lower()
    hits: list[Hit] = list(_format_hits(text, lower, style))
    hits += _pem_hits(text, lower)
    hits += _other_key_hits(text, lower)
    hits += _url_hits(text, lower)
    hits += _jwt_hits(text, lower, now=time.time() if now is None else now)
    hits += _curl_hits(text, lower)
    hits += _auth_tuple_hits(text, lower)
    for count, (start, end) in enumerate(line_windows(text, lower)):
        if count >= MAX_WINDOWS:
            if notes is not None:
                notes.append(f"past {MAX_WINDOWS:,} lines naming keys, tokens or passwords, only token formats "
                             "were looked for")
            break
        line, line_lower = text[start:end], lower[start:end]
        hits += _context_hits(text, start, line, line_lower)
        hits += _header_hits(text, start, line, line_lower)
        if style not in (Style.STRICT, Style.BINARY):
            hits += _assignment_hits(text, start, line, style)
            hits += _entropy_hits(start, line, line_lower, style)
    hits += _chunk_context_hits(text, lower, hits)
    if style not in (Style.STRICT, Style.BINARY):
        hits += _k8s_env_hits(text, lower)
    return [h for h in resolve_overlaps(hits) if not _published(h)]


PUBLISHED_VALUES: dict[str, str] = {
    "0011cc25eb4320717494d2703e8cba85743e71b500283c21c8b88147992f9059":
        "the Azure storage emulator (Azurite) well-known account key, published by Microsoft",
}
"""SHA-256 (hex) of values that look like secrets but are published on purpose; never reported."""


def _published(hit: Hit) -> bool:
    import hashlib

    return hashlib.sha256(hit.secret.encode("utf-8", errors="surrogatepass")).hexdigest() in PUBLISHED_VALUES


def resolve_overlaps(hits: list[Hit]) -> list[Hit]:
    """Keep one hit per stretch of text: the lowest priority number (most specific detector) wins, then the
    longest; the result is in text order."""
    kept: list[Hit] = []
    taken: list[tuple[int, int]] = []
    for hit in sorted(hits, key=lambda h: (h.priority, -(h.end - h.start), h.start)):
        if any(hit.start < e and s < hit.end for s, e in taken):
            continue
        kept.append(hit)
        taken.append((hit.start, hit.end))
    return sorted(kept, key=lambda h: (h.start, h.end))
