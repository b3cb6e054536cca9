"""`scan secrets` against a labeled corpus: real secret formats that must be found (with the exact secret, by
its fingerprint) and the decoys detect-secrets and gitleaks users report as false positives, that must not be.

Every secret is built at run time from a seeded RNG, so the repository holds nothing that looks like a live
credential (and GitHub push protection has nothing to block).
"""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
import random
import string
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlfort.scan.secrets import scan_secrets

ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"
HEX = "0123456789abcdef"
B32 = string.ascii_uppercase + "234567"
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l".upper()
JWT_IO = ".".join([
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ",
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
])
"""The example token jwt.io shows, printed in countless tutorials: public, a decoy."""
SECRET_RULES = {f"MLF-SEC-00{i}" for i in range(1, 9)}


class Forge:
    """Realistic-looking fake secrets from a seeded RNG (never a real credential)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def s(self, n: int, alphabet: str = ALNUM) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def github(self) -> str:
        return "gh" + "p_" + self.s(36)

    def aws_id(self) -> str:
        return "AK" + "IA" + self.s(16, B32)

    def aws_secret(self) -> str:
        return self.s(40, B64)

    def jwt(self, payload: dict[str, object] | None = None) -> str:
        def seg(obj: object) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

        body = payload or {"sub": self.s(8), "exp": 4102444800, "scope": "admin"}
        return f"{seg({'alg': 'HS256', 'typ': 'JWT'})}.{seg(body)}.{self.s(43, URLSAFE)}"

    def pem_body(self, n: int = 1200) -> str:
        raw = self.rng.randbytes(n)
        b64 = base64.b64encode(raw).decode()
        return "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))

    def pem(self, kind: str = "RSA PRIVATE KEY", n: int = 1200) -> tuple[str, str]:
        body = self.pem_body(n)
        return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n", body.replace("\n", "")


@dataclass
class Case:
    name: str
    filename: str
    content: str | bytes
    expect: tuple[tuple[str, str], ...] = ()
    """(kind, secret) pairs that must be reported; empty for a decoy (nothing may be reported)."""


def _nb(cells: list[dict[str, object]]) -> str:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3"}},
                       "cells": cells}, indent=1)


def _code(source: str, outputs: list[dict[str, object]] | None = None) -> dict[str, object]:
    return {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": source.splitlines(True),
            "outputs": outputs or []}


def positives(f: Forge) -> list[Case]:
    cases: list[Case] = []

    def add(name: str, filename: str, content: str | bytes, *expect: tuple[str, str]) -> None:
        cases.append(Case(name, filename, content, tuple(expect)))

    t = f.github()
    add("github classic token in .env", ".env", f"GITHUB_TOKEN={t}\n", ("github-token", t))
    t = "github" + "_pat_" + f.s(22) + "_" + f.s(59)
    add("github fine-grained token in yaml", "ci.yml", f"env:\n  GH_PAT: {t}\n", ("github-fine-grained-token", t))
    t = "glp" + "at-" + f.s(20, URLSAFE)
    add("gitlab token in ci variables", ".gitlab-ci.yml", f"variables:\n  GITLAB_TOKEN: \"{t}\"\n",
        ("gitlab-token", t))
    i, k = f.aws_id(), f.aws_secret()
    add("aws credentials file", "credentials",
        f"[default]\naws_access_key_id = {i}\naws_secret_access_key = {k}\nregion = eu-west-1\n",
        ("aws-access-key-id", i), ("aws-secret-access-key", k))
    i, k = f.aws_id(), f.aws_secret()
    add("aws keys in boto3 call", "s3.py",
        f"s3 = boto3.client(\n    's3',\n    aws_access_key_id='{i}',\n    aws_secret_access_key='{k}',\n)\n",
        ("aws-access-key-id", i), ("aws-secret-access-key", k))
    i, k = f.aws_id(), f.aws_secret()
    add("aws key pair without names, next to each other", "keys.txt", f"prod keys\n{i}\n{k}\n",
        ("aws-access-key-id", i), ("aws-secret-access-key", k))
    t = "IQoJb3JpZ2luX2Vj" + f.s(300, B64)
    add("aws session token", "session.env", f"AWS_SESSION_TOKEN={t}\n", ("aws-session-token", t))
    pem, body = f.pem("PRIVATE KEY")
    sa = {"type": "service_account", "project_id": "ml-prod", "private_key_id": f.s(40, HEX),
          "private_key": pem, "client_email": "trainer@ml-prod.iam.gserviceaccount.com"}
    add("gcp service account json", "sa.json", json.dumps(sa, indent=2), ("gcp-service-account-key", body))
    t = "AI" + "za" + f.s(35, URLSAFE)
    add("google api key in javascript", "maps.js", f"const MAPS = \"{t}\";\n", ("google-api-key", t))
    t = "GOC" + "SPX-" + f.s(28, URLSAFE)
    add("gcp oauth client secret json", "client_secret.json",
        json.dumps({"installed": {"client_id": "1234-abc.apps.googleusercontent.com", "client_secret": t}}),
        ("gcp-oauth-client-secret", t))
    k = f.s(86, B64) + "=="
    add("azure storage connection string", "appsettings.json",
        json.dumps({"Storage": f"DefaultEndpointsProtocol=https;AccountName=mlprod;AccountKey={k};"
                               "EndpointSuffix=core.windows.net"}), ("azure-storage-account-key", k))
    sig = f.s(43, B64).replace("+", "%2B").replace("/", "%2F") + "%3D"
    add("azure sas url", "download.sh",
        f"curl -o data.parquet 'https://mlprod.blob.core.windows.net/data/x.parquet?sv=2022-11-02&ss=b&srt=o&"
        f"sp=r&se=2030-01-01T00:00:00Z&st=2024-01-01T00:00:00Z&spr=https&sig={sig}'\n", ("azure-sas-token", sig))
    t = f.s(3) + "8Q~" + f.s(34, ALNUM + "_~.-")
    t = t if t[-1] not in ".-~_" else t[:-1] + "x"
    add("azure ad client secret", "azure.env", f"AZURE_CLIENT_SECRET={t}\n", ("azure-ad-client-secret", t))
    pem, body = f.pem("RSA PRIVATE KEY")
    add("rsa private key file", "id_rsa", pem, ("private-key", body))
    pem, body = f.pem("EC PRIVATE KEY", 120)
    yaml_block = "tls:\n  key: |\n" + "".join("    " + line + "\n" for line in pem.splitlines())
    add("ec private key in a yaml block", "values.yaml", yaml_block, ("private-key", body))
    pem, body = f.pem("OPENSSH PRIVATE KEY", 400)
    add("openssh private key", "deploy_key", pem, ("private-key", body))
    pem, body = f.pem("PRIVATE KEY", 1200)
    add("pkcs8 key inside a json string with \\n escapes", "secrets.json", json.dumps({"signing_key": pem}),
        ("private-key", body))
    pem, body = f.pem("ENCRYPTED PRIVATE KEY", 1300)
    add("encrypted private key", "key.pem", pem, ("private-key", body))
    pem, body = f.pem("PGP PRIVATE KEY BLOCK", 900)
    pgp = pem.replace("BLOCK-----\n", "BLOCK-----\nVersion: GnuPG v2\n\n", 1)
    add("pgp private key block", "secring.asc", pgp, ("private-key", body))
    t = "xo" + "xb-" + f.s(12, string.digits) + "-" + f.s(13, string.digits) + "-" + f.s(24)
    add("slack bot token", "bot.py", f'client = WebClient(token="{t}")\n', ("slack-token", t))
    t = "T" + f.s(10, string.ascii_uppercase + string.digits) + "/B" + f.s(10, string.ascii_uppercase) + "/" + f.s(24)
    add("slack webhook", "alerts.yaml", f"webhook: https://hooks.slack.com/services/{t}\n", ("slack-webhook", t))
    t = "sk_" + "live_" + f.s(99)
    add("stripe live key", "billing.py", f'stripe.api_key = "{t}"\n', ("stripe-live-key", t))
    t = "sk-" + "proj-" + f.s(156, URLSAFE)
    add("openai project key in a notebook cell", "train.ipynb",
        _nb([_code(f'import os\nos.environ["OPENAI_API_KEY"] = "{t}"\n')]), ("openai-key", t))
    t = "sk-" + f.s(20) + "T3Blbk" + "FJ" + f.s(20)
    add("openai legacy key", "chat.py", f"openai.api_key = '{t}'\n", ("openai-key", t))
    t = "sk-" + "ant-api03-" + f.s(93, URLSAFE) + "AA"
    add("anthropic key in .env", "claude.env", f"ANTHROPIC_API_KEY={t}\n", ("anthropic-key", t))
    t = "hf" + "_" + f.s(34, string.ascii_letters)
    add("hugging face token printed in a notebook output", "hub.ipynb",
        _nb([_code("print(token)\n", [{"output_type": "stream", "name": "stdout", "text": [f"{t}\n"]}])]),
        ("huggingface-token", t))
    t = f.s(40, HEX)
    add("wandb key in wandb.login", "log.py", f'wandb.login(key="{t}")\n', ("wandb-api-key", t))
    t = f.s(40, HEX)
    add("wandb key in .netrc", ".netrc", f"machine api.wandb.ai\n  login user\n  password {t}\n", ("wandb-api-key", t))
    t = "da" + "pi" + f.s(32, HEX)
    add("databricks token", ".databrickscfg", f"[DEFAULT]\nhost = https://adb-1.azuredatabricks.net\ntoken = {t}\n",
        ("databricks-token", t))
    t = "np" + "m_" + f.s(36)
    add("npm token in .npmrc", ".npmrc", f"//registry.npmjs.org/:_authToken={t}\n", ("npm-token", t))
    t = "py" + "pi-AgEIcHlwaS5vcmc" + f.s(150, URLSAFE)
    add("pypi token in .pypirc", ".pypirc", f"[pypi]\nusername = __token__\npassword = {t}\n", ("pypi-token", t))
    sid, tok = "SK" + f.s(32, HEX), f.s(32, HEX)
    add("twilio api key and auth token", "sms.py", f'TWILIO_API_KEY = "{sid}"\nTWILIO_AUTH_TOKEN = "{tok}"\n',
        ("twilio-api-key", sid), ("twilio-auth-token", tok))
    t = "SG" + "." + f.s(22, URLSAFE) + "." + f.s(43, URLSAFE)
    add("sendgrid key", "mail.yaml", f"sendgrid:\n  api_key: {t}\n", ("sendgrid-key", t))
    t = f.jwt()
    add("jwt in a config", "auth.yaml", f"id_token: {t}\n", ("jwt", t))
    p = f.s(18)
    add("postgres url password", "settings.py", f'DATABASE_URL = "postgresql://app:{p}@db.internal:5432/app"\n',
        ("url-password", p))
    p = f.s(10) + "%40" + f.s(6)
    add("mongodb+srv url with an url-encoded password", "mongo.env",
        f"MONGO_URI=mongodb+srv://trainer:{p}@cluster0.a1b2c.mongodb.net/?retryWrites=true\n", ("url-password", p))
    p = f.s(24)
    add("redis url with empty user", "celery.py", f"broker_url = 'redis://:{p}@cache.internal:6379/0'\n",
        ("url-password", p))
    p = f.s(16)
    add("amqp url", "queue.ini", f"[queue]\nurl = amqp://worker:{p}@mq.internal:5672/vhost\n", ("url-password", p))
    p = f.s(20)
    add("https git remote with credentials", "config", f'[remote "origin"]\n\turl = https://ci-bot:{p}@git.corp.net/ml.git\n',
        ("url-password", p))
    b = base64.b64encode(f"admin:{f.s(14)}".encode()).decode()
    add("basic auth header in curl", "fetch.sh", f"curl -H 'Authorization: Basic {b}' https://api.internal/v1\n",
        ("authorization-basic", b))
    p = f.s(15)
    add("curl -u user:password", "upload.sh", f"curl -u deployer:{p} -T model.bin https://nexus.internal/repo/\n",
        ("curl-user-password", p))
    p = f.s(14)
    add("password assignment in python", "db.py", f'db_password = "{p}"\n', ("secret-assignment", p))
    p = f.s(12) + "!"
    add("password in yaml", "config.yaml", f"database:\n  user: app\n  password: {p}\n", ("secret-assignment", p))
    p = f.s(16)
    add("password in .env", "prod.env", f"POSTGRES_PASSWORD={p}\n", ("secret-assignment", p))
    p = f.s(16)
    add("password in json", "conn.json", json.dumps({"host": "db", "password": p}), ("secret-assignment", p))
    p = f.s(16)
    add("--password= on a command line", "run.sh", f"python train.py --db-password={p} --epochs 3\n",
        ("secret-assignment", p))
    t = f.s(32, ALNUM)
    add("high-entropy value next to a key name", "service.toml", f'[vendor]\ndeploy_key = "{t}"\n',
        ("high-entropy-string", t))
    t = f.s(64, HEX)
    add("hex signing key", "jwt.py", f'JWT_SIGNING_KEY = "{t}"\n', ("secret-assignment", t))
    pem, body = f.pem("RSA PRIVATE KEY", 600)
    add("private key inside a pickle", "tokenizer.pkl", pickle.dumps({"tls_key": pem}, protocol=4),
        ("private-key", body))
    t = "hf" + "_" + f.s(34, string.ascii_letters)
    add("token inside a protocol-2 pickle", "state.pt.pkl", pickle.dumps({"hub": {"token": t}}, protocol=2),
        ("huggingface-token", t))
    t = "hf" + "_" + f.s(34, string.ascii_letters)
    header = json.dumps({"__metadata__": {"format": "pt", "hub_token": t},
                         "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    add("token in safetensors metadata", "model.safetensors", struct.pack("<Q", len(header)) + header + b"\0" * 8,
        ("huggingface-token", t))
    p = f.s(12) + "!" + f.s(2, string.digits)
    add("password in a pickled hyper-parameter dict", "last.ckpt",
        pickle.dumps({"epoch": 3, "hyper_parameters": {"lr": 0.001, "db_password": p, "name": "run-7"}}, protocol=4),
        ("secret-assignment", p))
    t = f.s(40, HEX)
    data_pkl = pickle.dumps({"state_dict": {"w": [0.5] * 8}, "config": {"wandb_api_key": t}}, protocol=2)
    add("key in a torch-style zip checkpoint (stored pickle, protocol 2)", "model.pt",
        _zip_bytes({"archive/data.pkl": data_pkl, "archive/version": "3\n"}, zipfile.ZIP_STORED),
        ("wandb-api-key", t))
    t = f.github()
    buf = _zip_bytes({"archive/data.pkl": pickle.dumps({"w": [0.0] * 10}), "archive/extra/notes.txt":
                      f"pushed with {t}\n" * 20}, zipfile.ZIP_DEFLATED)
    add("token in a deflated member of a zip (.pt / .keras)", "model.keras", buf, ("github-token", t))
    t = "AI" + "za" + f.s(35, URLSAFE)
    add("google key in an html notebook output", "maps.ipynb",
        _nb([_code("show()\n", [{"output_type": "display_data", "metadata": {},
                                 "data": {"text/html": [f"<script src='https://maps.googleapis.com/maps/api/js?key={t}'>"
                                                        "</script>"], "text/plain": ["<map>"]}}])]),
        ("google-api-key", t))
    t = "sk-" + "ant-api03-" + f.s(93, URLSAFE) + "AA"
    add("key in a notebook error traceback", "err.ipynb",
        _nb([_code("call()\n", [{"output_type": "error", "ename": "AuthenticationError",
                                 "evalue": f"invalid x-api-key {t}",
                                 "traceback": ["\x1b[0;31mAuthenticationError\x1b[0m", f"key={t}"]}])]),
        ("anthropic-key", t))
    p = f.s(20)
    add("kubernetes env name/value pair", "deploy.yaml",
        f"env:\n  - name: DB_PASSWORD\n    value: \"{p}\"\n  - name: LOG_LEVEL\n    value: info\n",
        ("secret-assignment", p))
    p = f.s(20)
    add("Dockerfile ENV", "Dockerfile", f"FROM python:3.11\nENV API_TOKEN {p}\n", ("secret-assignment", p))
    p = f.s(14)
    add("sql identified by", "init.sql", f"CREATE USER ml IDENTIFIED BY '{p}';\n", ("sql-password", p))
    t = "gs" + "k_" + f.s(52)
    add("groq key", "llm.py", f'client = Groq(api_key="{t}")\n', ("groq-key", t))
    t = "r8" + "_" + f.s(37)
    add("replicate token", "replicate.env", f"REPLICATE_API_TOKEN={t}\n", ("replicate-token", t))
    t = f.s(32, HEX)
    add("kaggle.json", "kaggle.json", json.dumps({"username": "mlteam", "key": t}), ("kaggle-api-key", t))
    t = "AGE-SECRET" + "-KEY-1" + f.s(58, BECH32)
    add("age secret key", "key.txt", f"# created: 2024-01-01\n{t}\n", ("age-secret-key", t))
    t = f.s(10, string.digits) + ":AA" + f.s(33, URLSAFE)
    add("telegram bot token", "bot.env", f"TELEGRAM_BOT_TOKEN={t}\n", ("telegram-bot-token", t))
    t = "dckr" + "_pat_" + f.s(27, URLSAFE)
    add("docker hub token", "login.sh", f"echo {t} | docker login -u ml --password-stdin\n", ("docker-hub-token", t))
    t = "hv" + "s." + f.s(95, URLSAFE)
    add("vault token", "vault.env", f"VAULT_TOKEN={t}\n", ("vault-token", t))
    t = "django-insecure-" + f.s(50, string.ascii_lowercase + string.digits + "!@#$%^&*(-_=+)")
    add("django secret key", "settings.py", f"SECRET_KEY = '{t}'\n", ("secret-assignment", t))
    t = "wh" + "sec_" + f.s(32)
    add("stripe webhook secret", "hooks.py", f'endpoint_secret = "{t}"\n', ("stripe-webhook-secret", t))
    t = f.s(18, string.digits) + "/" + f.s(68, URLSAFE)
    add("discord webhook", "notify.py", f'URL = "https://discord.com/api/webhooks/{t}"\n', ("discord-webhook", t))
    snowflake = base64.b64encode(("1" + f.s(17, string.digits)).encode()).decode().rstrip("=")
    t = snowflake + "." + f.s(6, URLSAFE) + "." + f.s(38, URLSAFE)
    add("discord bot token", "bot.py", f'DISCORD = "{t}"\nclient.run(DISCORD)  # discord bot\n',
        ("discord-bot-token", t))
    t = "AK" + "Cp" + f.s(69)
    add("artifactory api key", "pip.conf", f"[global]\nextra-index-url = https://pypi.corp/simple\nkey = {t}\n",
        ("artifactory-token", t))
    t = "amzn" + ".mws." + "-".join(f.s(n, HEX) for n in (8, 4, 4, 4, 12))
    add("amazon mws token", "mws.cfg", f"MWS_AUTH_TOKEN={t}\n", ("amazon-mws-key", t))
    p = f.s(16)
    add("xml password element", "settings.xml", f"<server><id>nexus</id><password>{p}</password></server>\n",
        ("secret-assignment", p))
    t = f.github()
    add("token in a utf-16 file", "notes.txt", ("\ufeff" + f"token: {t}\n").encode("utf-16-le"), ("github-token", t))
    priv = "\n".join(f.s(64, B64) for _ in range(8))
    putty = (f"PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: deploy\nPublic-Lines: 2\n"
             f"{f.s(64, B64)}\n{f.s(20, B64)}\nPrivate-Lines: 8\n{priv}\nPrivate-MAC: {f.s(64, HEX)}\n")
    add("putty private key", "deploy.ppk", putty, ("putty-private-key", priv.replace("\n", "")))
    d = f.s(43, URLSAFE)
    add("jwk with its private part", "jwks.json",
        json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "x": f.s(43, URLSAFE), "y": f.s(43, URLSAFE), "d": d}]}),
        ("jwk-private-key", d))
    t = f.s(40)
    add("bearer token in python headers", "client.py", f'headers = {{"Authorization": "Bearer {t}"}}\n',
        ("authorization-bearer", t))
    t = f.s(32, HEX)
    add("x-api-key header", "call.sh", f"curl -H 'x-api-key: {t}' https://api.vendor.io\n", ("api-key-header", t))
    weak = f.s(3, string.ascii_uppercase) + f.s(4, string.ascii_lowercase) + f.s(2, string.digits) + "&!"
    add("weak but real password in code", "seed.py", f'password = "{weak}"\n', ("secret-assignment", weak))
    p = f.s(10) + "#" + f.s(2, string.digits)
    add("java properties", "application.properties", f"spring.datasource.password={p}\n", ("secret-assignment", p))
    p = f.s(8) + "!" + f.s(3)
    add("php variable", "config.php", f"<?php\n$db_pass = '{p}';\n", ("secret-assignment", p))
    p = f.s(32)
    add("client secret in yaml", "oauth.yaml", f"oauth:\n  client_id: ml-portal\n  client_secret: {p}\n",
        ("secret-assignment", p))
    p = f.s(10) + "$" + f.s(3, string.digits)
    add("go struct field", "db.go", f'cfg := Config{{User: "ml", Password: "{p}"}}\n', ("secret-assignment", p))
    p = f.s(9) + "%" + f.s(2, string.digits)
    add("c# connection string", "appsettings.Production.json",
        json.dumps({"ConnectionStrings": {"Db": f"Server=sql1;Database=ml;User Id=sa;Password={p};"}}),
        ("secret-assignment", p))
    p = f.s(12) + "9"
    add("jdbc url query password", "jdbc.conf", f"url=jdbc:postgresql://db/ml?user=app&password={p}\n",
        ("secret-assignment", p))
    p = f.s(20)
    add("generic netrc entry", ".netrc", f"machine git.corp.net login ci password {p}\n", ("secret-assignment", p))
    p = f.s(16)
    add("notebook %env magic", "setup.ipynb", _nb([_code(f"%env HF_HUB_TOKEN_SECRET={p}\n")]),
        ("secret-assignment", p))
    t = f.s(40, ALNUM + "+/")
    add("high-entropy value of an unknown service in json", "vendor.json", json.dumps({"vendor_auth": t}),
        ("secret-assignment", t))
    t = f.s(48)
    add("high-entropy in a call next to a key keyword", "cohere_client.py", f'co = cohere.Client(api_key="{t}")\n',
        ("secret-assignment", t))
    t = f.s(40)
    add("high-entropy positional argument next to a key name", "llm.py",
        f'# mistral key\nclient = MistralClient("{t}")  # key\n', ("high-entropy-string", t))
    return cases


def decoys(f: Forge) -> list[Case]:
    cases: list[Case] = []

    def add(name: str, filename: str, content: str | bytes) -> None:
        cases.append(Case(name, filename, content))

    add("aws documentation example keys", "README.md",
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n")
    add("placeholders in angle brackets", "setup.md", "export OPENAI_API_KEY=<your-api-key>\ntoken: <your-token>\n")
    add("shell and compose variables", "docker-compose.yml",
        "environment:\n  POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}\n  API_KEY: ${API_KEY:-}\n  TOKEN: $TOKEN\n")
    add("jinja and helm templates", "secret.yaml.j2",
        "password: {{ vault_db_password }}\napi_key: \"{{ .Values.apiKey }}\"\n")
    add("python format templates", "conf.ini", "[db]\npassword = %(db_password)s\nsecret = {secret}\n")
    add("changeme and friends", "defaults.yaml", "admin_password: changeme\nsecret: secret\ntoken: token\n")
    add("masked values", "masked.env", "API_KEY=xxxxxxxxxxxxxxxxxxxxxxxx\nPASSWORD=********\nTOKEN=...\n")
    add("values read from the environment", "settings.py",
        "import os\nfrom getpass import getpass\nPASSWORD = os.environ['DB_PASSWORD']\napi_key = os.getenv('API_KEY')\n"
        "password = getpass()\ntoken = settings.HF_TOKEN\nsecret = config['secret']\n")
    add("null and empty values", "empty.yaml", "password: null\ntoken: ''\napi_key: ~\nsecret: \"\"\n")
    add("pip hashes", "requirements.txt",
        "".join(f"pkg{i}==1.{i} \\\n    --hash=sha256:{f.s(64, HEX)}\n" for i in range(5)))
    add("npm integrity", "package-lock.json",
        json.dumps({"packages": {f"node_modules/p{i}": {"resolved": f"https://registry.npmjs.org/p{i}/-/p{i}.tgz",
                                                         "integrity": "sha512-" + f.s(86, B64) + "=="}
                                 for i in range(5)}}, indent=2))
    add("poetry lock hashes", "poetry.lock",
        "".join(f'[[package]]\nname = "p{i}"\nfiles = [{{file = "p{i}.whl", hash = "sha256:{f.s(64, HEX)}"}}]\n'
                for i in range(5)))
    add("go.sum", "go.sum", "".join(f"github.com/x/y{i} v1.0.{i} h1:{f.s(43, B64)}=\n" for i in range(5)))
    add("git shas and revisions", "model_card.yaml",
        f"revision: {f.s(40, HEX)}\ncommit_hash: {f.s(40, HEX)}\n_commit_hash: \"{f.s(40, HEX)}\"\n")
    run_id = f"{f.s(8, HEX)}-{f.s(4, HEX)}-4{f.s(3, HEX)}-a{f.s(3, HEX)}-{f.s(12, HEX)}"
    add("uuids", "ids.json", json.dumps({"run_id": run_id, "secret_id": "3f1c2a9e-5b7d-4c1e-9f2a-8d6b4e0c1a7f"}))
    add("docker image digest", "deploy.yaml", f"image: ghcr.io/acme/trainer@sha256:{f.s(64, HEX)}\n")
    add("git lfs pointer", "weights.bin", f"version https://git-lfs.github.com/spec/v1\noid sha256:{f.s(64, HEX)}\n"
                                          "size 438000000\n")
    pub = f.pem_body(300)
    add("public key pem", "public.pem", f"-----BEGIN PUBLIC KEY-----\n{pub}\n-----END PUBLIC KEY-----\n")
    add("certificate pem", "ca.crt", f"-----BEGIN CERTIFICATE-----\n{f.pem_body(900)}\n-----END CERTIFICATE-----\n")
    add("ssh public key", "authorized_keys", f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{f.s(43, B64)} me@laptop\n")
    add("elided private key in docs", "TLS.md",
        "```\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA...\n...\n-----END RSA PRIVATE KEY-----\n```\n")
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + f.rng.randbytes(3000)).decode()
    add("base64 image in a notebook output", "plot.ipynb",
        _nb([_code("plt.plot(x)\n", [{"output_type": "display_data", "metadata": {},
                                      "data": {"image/png": png, "text/plain": ["<Figure size 640x480>"]}}])]))
    add("base64 image in html next to a keyword", "page.html",
        f'<img alt="token icon" src="data:image/png;base64,{png[:400]}">\n')
    add("imports and tokenizer calls", "tok.py",
        "from transformers import AutoTokenizer\n"
        "tokenizer = AutoTokenizer.from_pretrained(\"meta-llama/Llama-2-7b-hf\", token=token)\n"
        "ids = tokenizer(text, max_length=512)[\"input_ids\"]\n")
    add("tokenizer config", "tokenizer_config.json",
        json.dumps({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "[UNK]",
                    "mask_token": "[MASK]", "model_max_length": 4096, "tokenizer_class": "LlamaTokenizer",
                    "chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}",
                    "added_tokens_decoder": {"0": {"content": "<unk>", "special": True}}}, indent=2))
    add("hf config with token settings", "config.json",
        json.dumps({"architectures": ["LlamaForCausalLM"], "use_auth_token": True, "hub_token": "<HUB_TOKEN>",
                    "max_new_tokens": 256, "vocab_size": 32000, "token_type_ids": [0, 0, 1],
                    "_name_or_path": "meta-llama/Llama-2-7b-hf", "torch_dtype": "float16"}))
    add("training args dump", "training_args.json",
        json.dumps({"push_to_hub_token": None, "hub_token": "<HUB_TOKEN>", "hub_model_id": "acme/churn-bert-v2",
                    "report_to": ["wandb"], "run_name": "bert-base-uncased-finetuned-2024-05-01"}))
    add("jwt.io example token", "auth.md", f"Authorization: Bearer {JWT_IO}\n")
    add("supabase anon key (public by design)", "supabase.js",
        f"const supabase = createClient(url, '{f.jwt({'iss': 'supabase', 'role': 'anon', 'exp': 4102444800})}')\n")
    add("bcrypt and django hashes", "users.py",
        "password_hash = \"$2b$12$" + f.s(53, ALNUM + "./") + "\"\n"
        "hashed_password = 'pbkdf2_sha256$600000$" + f.s(22) + "$" + f.s(43, B64) + "='\n")
    add("token settings that are not tokens", "llm.yaml",
        "token_type: bearer\nmax_tokens: 4096\ntoken_limit: 8192\ntoken_url: https://auth.corp/oauth/token\n"
        "password_min_length: 12\nsecret_name: trainer-secrets\nsecretName: db-creds\n")
    add("bearer headers from variables", "api.py",
        "headers = {\"Authorization\": f\"Bearer {token}\"}\nh2 = {\"Authorization\": \"Bearer \" + token}\n"
        "h3 = {'Authorization': 'Bearer ${TOKEN}'}\ncurl -H \"Authorization: Bearer $TOKEN\" https://x\n")
    add("placeholder database urls", "db.md",
        "postgresql://user:password@localhost:5432/db\npostgres://postgres:postgres@localhost/app\n"
        "mysql://root:root@127.0.0.1/x\nhttps://username:password@example.com/\n")
    add("templated url", "db.py", 'url = f"postgresql://{user}:{password}@{host}:{port}/{db}"\n'
                                  "url2 = 'mongodb://%s:%s@%s' % (user, pw, host)\n")
    add("url with user but no password", "remote.cfg", "url = https://ci-bot@github.com/acme/ml.git\n"
                                                       "ssh://git@github.com/acme/ml.git\n")
    add("sk- placeholders", "openai.md", "OPENAI_API_KEY=sk-...\nOPENAI_API_KEY=sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
                                         "key = 'sk-your-key-here'\n")
    add("filler github token", "docs.md", "GITHUB_TOKEN=ghp_" + "x" * 36 + "\ntoken: ghp_" + "A" * 36 + "\n")
    add("checksums and etags", "manifest.yaml",
        f"checksum: {f.s(64, HEX)}\netag: \"{f.s(32, HEX)}\"\nmd5: {f.s(32, HEX)}\nsha1: {f.s(40, HEX)}\n")
    add("minified javascript with blobs", "app.min.js",
        "var a=\"" + f.s(200, B64) + "\";function t(e){return e.token}var secretKey=\"" + f.s(40, B64) + "\";\n")
    add("long names that mention secrets", "names.py",
        "AWS_SECRET_ACCESS_KEY_ENV_VAR_NAME_FOR_PROD_2024 = 'AWS_SECRET_ACCESS_KEY'\n"
        "GetUserAccessTokenFromCacheOrRefresh = None\n")
    add("kubernetes secret references", "pod.yaml",
        "env:\n  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef:\n        name: db-secret\n"
        "        key: password\n")
    add("secret file paths", "app.yaml", "password_file: /run/secrets/db_password\ntoken_path: ~/.cache/hf/token\n"
                                         "secret_path: ./secrets/dev.json\n")
    add("ui strings", "en.json", json.dumps({"password": "Enter your password", "token_expired":
                                             "Your session token expired", "api_key_help": "Find it in Settings"}))
    add("function signatures", "auth.py",
        "def check_password(password, hashed):\n    return bcrypt.checkpw(password, hashed)\n\n"
        "def login(self, token=None, api_key=api_key):\n    if token == \"\":\n        token = self.token\n")
    add("config words", "auth.yaml", "auth: required\ntoken: optional\npassword: disabled\nsecret: none\n")
    add("client ids and nonces", "oauth.json",
        json.dumps({"client_id": "3f1c2a9e-5b7d-4c1e-9f2a-8d6b4e0c1a7f", "nonce": f.s(32, HEX),
                    "salt": f.s(24, B64), "iv": f.s(32, HEX)}))
    add("numbers", "timeouts.ini", "[auth]\nsession_timeout = 3600\ntoken_ttl = 86400\nkey_rotation_days = 90\n")
    add("weights as base64 without a keyword", "weights.json", json.dumps({"layer0": f.s(2000, B64)}))
    add("twilio account sid", "sms.cfg", f"TWILIO_ACCOUNT_SID=AC{f.s(32, HEX)}\n")
    add("slack docs example token", "slack.md", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx\n")
    add("argument passing", "client.py", "client = Client(api_key=api_key, token=self.token, password=password)\n")
    add("reading a header", "server.py", 'token = request.headers.get("Authorization")\n')
    add("mlflow run ids and model shas", "meta.yaml", f"run_id: {f.s(32, HEX)}\nmodel_sha: {f.s(40, HEX)}\n")
    add("stripe publishable key", "checkout.js", f"const stripe_publishable_key = 'pk_live_{f.s(99)}';\n")
    add("sentry dsn", "sentry.py", f'sentry_sdk.init(dsn="https://{f.s(32, HEX)}@o12345.ingest.sentry.io/67890")\n')
    add("notebook with execution metadata", "meta.ipynb",
        _nb([_code("x = 1\n", [{"output_type": "execute_result", "execution_count": 1, "metadata": {},
                                "data": {"text/plain": ["1"]}}])]))
    add("pragma-free test values", "test_auth.py", 'assert login("alice", password="") is False\n'
                                                   'PASSWORD_FIELD = "password"\n')
    add("model ids and paths next to token", "hub.py",
        'snapshot_download("mistralai/Mistral-7B-Instruct-v0.2", token=hf_token)\n'
        'path = "/home/user/.cache/huggingface/token"\n')
    add("an encoded file path and a keyword", "paths.yaml",
        "ssh_key: ~/.ssh/id_ed25519\nkey_file: secrets/gcp-sa-prod-2024-01.json\n")
    add("aws api pagination and idempotency tokens", "aws.json",
        json.dumps({"NextToken": f.s(60, B64), "ClientRequestToken": "a8ca07e4-61ec-4399-99f4-19853801bcd5",
                    "PasswordLastUsed": "2016-09-08T21:47:36Z"}))
    add("style maps and colours", "style.py",
        'STYLES = {\n    Token: "#ddd0c0",\n    Token.Keyword: "bold #f92672",\n}\n')
    add("regex patterns named token", "lexer.py", "jsonnet_token = r'[^\\W\\d]\\w*'\nTOKEN_RE = '[A-Za-z_]+[0-9]*'\n")
    add("namespaced names", "providers.json", json.dumps({"AWS::IAM::AccessKey": f.s(16, HEX),
                                                         "AWS::ApiGateway::ApiKey": f.s(16, HEX)}))
    add("c identifiers next to key", "hash.h",
        "XXH3_combine16((char*)secretBuffer + secretSize - 16, XXH128_hashFromCanonical(&scrambler));\n"
        "Extension* FindOrNullInLargeMap(int key);\n")
    add("codecov badge token", "README.rst",
        ".. image:: https://codecov.io/gh/acme/ml/branch/main/graph/badge.svg?token=Pk8G9gg3y9\n")
    add("label values", "consts.py", 'SECRET_KEY_NAME = "AWSSecretKey"\nTOKEN_COMMENT: "comment"\n'
                                     'token_key = "RpcGroupManagementToken"\nprivate_key = "key.priv"\n')
    add("tuples and lists", "pipe.py", 'union = FeatureUnion([("pass", "passthrough")])\n'
                                       '__slots__ = ("tokens", "sourceName", "pos")\n')
    add("sql prose", "docs.py", '"""Load a library identified by \'name\'."""\n')
    add("azurite development key", "local.settings.json",
        json.dumps({"AzureWebJobsStorage": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
                    + _AZURITE + ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"}))
    return cases


_AZURITE = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""The Azure storage emulator's documented, public account key (a decoy by design)."""


def _zip_bytes(members: dict[str, bytes | str], compression: int) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _fingerprint(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def _write(root: Path, case: Case, index: int) -> Path:
    folder = root / f"{index:03d}"
    folder.mkdir(parents=True)
    path = folder / case.filename
    if isinstance(case.content, bytes):
        path.write_bytes(case.content)
    else:
        path.write_text(case.content, encoding="utf-8")
    return path


def _secret_findings(path: Path) -> list[dict[str, object]]:
    result = scan_secrets([path])
    return [dict(f.evidence) | {"rule_id": f.rule_id} for f in result.findings if f.rule_id in SECRET_RULES]


POSITIVES = positives(Forge(20240501))
DECOYS = decoys(Forge(20240502))


def test_the_corpus_is_big_enough():
    assert len(POSITIVES) >= 60 and len(DECOYS) >= 50
    assert sum(len(c.expect) for c in POSITIVES) >= 65


@pytest.mark.parametrize("case", POSITIVES, ids=[c.name for c in POSITIVES])
def test_real_secret_formats_are_found_with_their_exact_value(tmp_path, case):
    found = _secret_findings(_write(tmp_path, case, 0))
    got = {(f["kind"], f["fingerprint"]) for f in found}
    for kind, secret in case.expect:
        assert (kind, _fingerprint(secret)) in got, (kind, [(f["kind"], f["redacted"]) for f in found])


@pytest.mark.parametrize("case", DECOYS, ids=[c.name for c in DECOYS])
def test_decoys_are_not_reported(tmp_path, case):
    found = _secret_findings(_write(tmp_path, case, 0))
    assert found == [], [(f["kind"], f["redacted"]) for f in found]


def test_precision_and_recall_over_the_whole_corpus(tmp_path):
    """One scan of everything: every expected secret found (recall) and nothing else reported (precision)."""
    paths = [_write(tmp_path / "pos", c, i) for i, c in enumerate(POSITIVES)]
    paths += [_write(tmp_path / "neg", c, i) for i, c in enumerate(DECOYS)]
    result = scan_secrets([tmp_path])
    expected = {(str(p), kind, _fingerprint(s)) for p, c in zip(paths, POSITIVES, strict=False) for kind, s in c.expect}
    reported = {(f.target, f.evidence["kind"], f.evidence["fingerprint"]) for f in result.findings
                if f.rule_id in SECRET_RULES}
    true_positives = expected & reported
    recall = len(true_positives) / len(expected)
    precision = len(true_positives) / len(reported) if reported else 1.0
    assert recall == 1.0, sorted(expected - reported)
    assert precision == 1.0, sorted(reported - expected)
    assert result.counts["files"] == len(paths)
