"""Hypothesis strategies for sensitive text (PII, secrets) shared by the sanitiser's and the
logger's property tests."""

from __future__ import annotations

from hypothesis import strategies as st

from certexpiry.redact import MIN_SECRET_LENGTH

_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TOKEN = _B64URL + ".~+/"
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

#: Values registered as secrets: token-like, with a digit and a letter, so that they cannot
#: be a substring of the markers or of the fixed text of a log line.
registered_secrets = (
    st.text(alphabet=_ALNUM + "!#%&*+-=?@^_~", min_size=MIN_SECRET_LENGTH + 2, max_size=40)
    .filter(lambda value: any(c.isdigit() for c in value) and any(c.isalpha() for c in value))
    .filter(lambda value: value == value.strip())
)
jwts = st.builds(
    lambda a, b, c: f"eyJ{a}.{b}.{c}",
    st.text(alphabet=_B64URL, min_size=10, max_size=40),
    st.text(alphabet=_B64URL, min_size=10, max_size=60),
    st.text(alphabet=_B64URL, min_size=10, max_size=43),
)
_tokens = st.text(alphabet=_TOKEN, min_size=16, max_size=40)
_passwords = st.text(alphabet=_ALNUM + "-_.~", min_size=8, max_size=24).filter(
    lambda value: any(c.isdigit() for c in value)
)


@st.composite
def secret_snippets(draw: st.DrawFn) -> tuple[str, str]:
    """(text holding a secret, the secret part that must not survive)."""
    kind = draw(st.sampled_from(["jwt", "bearer", "dsn", "libpq", "assign", "json", "sb"]))
    if kind == "jwt":
        token = draw(jwts)
        return token, token
    if kind == "bearer":
        token = draw(_tokens)
        return f"Authorization: Bearer {token}", token
    password = draw(_passwords)
    if kind == "dsn":
        scheme = draw(st.sampled_from(["postgres", "postgresql"]))
        return f"{scheme}://postgres:{password}@db.example.supabase.co:5432/postgres", password
    if kind == "libpq":
        return f"host=db port=5432 user=postgres password={password} dbname=app", password
    if kind == "assign":
        key = draw(st.sampled_from(["apikey", "api_key", "token", "secret", "x-api-key"]))
        form = draw(st.sampled_from(["{k}={v}", "{k}: {v}", "'{k}': '{v}'", "{k}={v}&next=1"]))
        return form.format(k=key, v=password), password
    if kind == "json":
        key = draw(st.sampled_from(["apikey", "password", "access_token", "service_role_key"]))
        return f'{{"{key}": "{password}", "ok": true}}', password
    key = draw(st.text(alphabet=_B64URL, min_size=16, max_size=40))
    return f"sb_secret_{key}", key


_digits = st.integers(min_value=0, max_value=10**11 - 1).map("{:011d}".format)
national_ids = st.one_of(_digits, _digits.map(lambda d: f"{d[:6]} {d[6:]}"))
_LOCAL = "abcdefghijklmnopqrstuvwxyz0123456789"
emails = st.builds(
    lambda first, rest, domain, tld: f"{first}{rest}@{domain}.{tld}",
    st.sampled_from(_LOCAL),
    st.text(alphabet=_LOCAL + "._%+-", max_size=12).filter(
        lambda rest: ".." not in rest and not rest.endswith(".")
    ),
    st.text(alphabet=_LOCAL, min_size=1, max_size=10),
    st.sampled_from(["no", "com", "org", "io", "co.uk"]),
)
_mobile = st.integers(min_value=0, max_value=9_999_999).map(lambda n: f"{(4, 9)[n % 2]}{n:07d}")
phones = st.one_of(
    _mobile,
    _mobile.map(lambda d: f"+47 {d[:3]} {d[3:5]} {d[5:]}"),
    _mobile.map(lambda d: f"+47{d}"),
    _mobile.map(lambda d: f"{d[:2]} {d[2:4]} {d[4:6]} {d[6:]}"),
    st.integers(min_value=10**9, max_value=10**11 - 1).map(
        lambda n: f"+{str(n)[:2]} {str(n)[2:5]} {str(n)[5:8]} {str(n)[8:]}"
    ),
)
#: Personal data: (text, the part that must not survive).
pii = st.one_of(
    national_ids.map(lambda v: (v, v)),
    emails.map(lambda v: (v, v)),
    phones.map(lambda v: (v, v)),
)
#: Anything around the sensitive parts; the separators keep a rule from reading noise
#: as part of the value (a digit glued to an identity number makes it a longer number).
noise = st.text(max_size=20)
separators = st.sampled_from([" | ", "\n", " ; ", " , ", "\t"])


@st.composite
def texts_with_sensitive_parts(draw: st.DrawFn) -> tuple[str, list[str], str]:
    """A text mixing noise, secrets and PII; the parts that must not survive; the noise.

    The noise is returned so that a check can allow for noise that happens to contain a
    sensitive part itself (Hypothesis likes to reuse values): that occurrence is not a leak.
    """
    parts = draw(st.lists(st.one_of(secret_snippets(), pii), min_size=1, max_size=4))
    noises = [draw(noise)]
    pieces = [noises[0]]
    for text, _ in parts:
        noises.append(draw(noise))
        pieces += [draw(separators), text, draw(separators), noises[-1]]
    return "".join(pieces), [hidden for _, hidden in parts], "\x00".join(noises)


def leaked(cleaned: str, hidden: list[str], noise_text: str) -> list[str]:
    """Sensitive parts found in ``cleaned`` more often than the noise alone holds them."""
    return [part for part in hidden if cleaned.count(part) > noise_text.count(part)]


# ---------------------------------------------------------------- rules
