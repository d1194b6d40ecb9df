"""Phone numbers: parse what agents and callers type into E.164, and match what Salesforce stores.

Salesforce keeps phone fields as free text ("(415) 555-0101", "+44 20 7946 0958", "020 7946 0958"),
while Twilio hands Flex an E.164 number ("+14155550101"). This module reduces both to digits so
nothing user-supplied ever reaches SOSL/SOQL except digits we produced ourselves.

Extensions ("415-555-0101 ext 23", "... x23") are dropped, not rejected: an extension selects a
line behind the caller's switchboard, not a different caller, and the Contact's main number is
what identifies them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from .runtime.errors import BadRequest

# ITU-T E.164 country calling codes in service (ITU "List of ITU-T Recommendation E.164 assigned
# country codes"). The set is prefix-free: no code is the start of another, so reading 1, 2 then
# 3 leading digits finds the one code a number can carry.
CALLING_CODES = frozenset("""
1 7 20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58
60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98
211 212 213 216 218 220 221 222 223 224 225 226 227 228 229 230 231 232 233 234 235 236
237 238 239 240 241 242 243 244 245 246 247 248 249 250 251 252 253 254 255 256 257 258
260 261 262 263 264 265 266 267 268 269 290 291 297 298 299
350 351 352 353 354 355 356 357 358 359 370 371 372 373 374 375 376 377 378 379
380 381 382 383 385 386 387 389 420 421 423
500 501 502 503 504 505 506 507 508 509 590 591 592 593 594 595 596 597 598 599
670 672 673 674 675 676 677 678 679 680 681 682 683 685 686 687 688 689 690 691 692
800 808 850 852 853 855 856 870 878 880 881 882 883 886 888
960 961 962 963 964 965 966 967 968 970 971 972 973 974 975 976 977 979
992 993 994 995 996 998
""".split())

# ISO 3166-1 alpha-2 code + calling code, grouped by the trunk prefix people dial (and write)
# before a national number at home. `national_len`, when set, is the national number's fixed
# length: the trunk is stripped only at exactly trunk + that many digits, because in NANP and in
# Russia/Kazakhstan a national number can itself begin with the trunk digit's value in other
# positions (e.g. Russian toll-free 800...).
_COUNTRY_GROUPS = (
    ("0", None, """
        AE971 AF93 AL355 AM374 AR54 AT43 AU61 AX358 AZ994 BA387 BD880 BE32 BG359 BL590 BO591
        BR55 CC61 CD243 CH41 CN86 CU53 CX61 DE49 DZ213 EC593 EG20 EH212 ER291 ET251 FI358 FR33
        GB44 GE995 GF594 GG44 GH233 GP590 HR385 ID62 IE353 IL972 IM44 IN91 IQ964 IR98 JE44 JO962
        JP81 KE254 KG996 KH855 KP850 KR82 LA856 LB961 LK94 LR231 LY218 MA212 MD373 ME382 MF590
        MG261 MK389 MM95 MN976 MQ596 MW265 MY60 NA264 NG234 NL31 NP977 NZ64 PE51 PH63 PK92 PM508
        PS970 PY595 RE262 RO40 RS381 RW250 SA966 SD249 SE46 SI386 SK421 SL232 SS211 SY963 TH66
        TR90 TW886 TZ255 UA380 UG256 UY598 VE58 VN84 XK383 YE967 YT262 ZA27 ZM260 ZW263
    """),
    ("", None, """
        AD376 AO244 AW297 BF226 BH973 BI257 BJ229 BN673 BQ599 BT975 BW267 BZ501 CF236 CG242
        CI225 CK682 CL56 CM237 CO57 CR506 CV238 CW599 CY357 CZ420 DJ253 DK45 EE372 ES34 FJ679
        FK500 FM691 FO298 GA241 GI350 GL299 GM220 GN224 GQ240 GR30 GT502 GW245 GY592 HK852 HN504
        HT509 IO246 IS354 IT39 KI686 KM269 KW965 LI423 LS266 LU352 LV371 MC377 MH692 ML223 MO853
        MR222 MT356 MU230 MV960 MX52 MZ258 NC687 NE227 NF672 NI505 NO47 NR674 NU683 OM968 PA507
        PF689 PG675 PL48 PT351 PW680 QA974 SB677 SC248 SG65 SH290 SJ47 SM378 SN221 SO252 SR597
        ST239 SV503 SZ268 TD235 TG228 TK690 TL670 TN216 TO676 TV688 UZ998 VA39 VU678 WF681 WS685
    """),
    ("1", 10, """
        AG1 AI1 AS1 BB1 BM1 BS1 CA1 DM1 DO1 GD1 GU1 JM1 KN1 KY1 LC1 MP1 MS1 PR1 SX1 TC1 TT1
        US1 VC1 VG1 VI1
    """),
    ("8", 10, "KZ7 RU7"),
    ("8", None, "LT370 TJ992 TM993"),
    ("80", None, "BY375"),
    ("06", None, "HU36"),
)


@dataclass(frozen=True)
class Country:
    """How one country's numbers are dialled at home: its calling code and trunk prefix."""

    calling_code: str
    trunk: str
    national_len: int | None


def _build_countries() -> MappingProxyType:
    table = {}
    for trunk, national_len, entries in _COUNTRY_GROUPS:
        for entry in entries.split():
            table[entry[:2]] = Country(entry[2:], trunk, national_len)
    return MappingProxyType(table)


COUNTRIES = _build_countries()

# The trunk prefix to show in national-format variants, per calling code (countries sharing a
# code, like GB/JE/GG/IM on 44, share the habit).
_TRUNK_BY_CODE = MappingProxyType({c.calling_code: c.trunk for c in COUNTRIES.values() if c.trunk})

_MAX_INPUT = 64          # longer text is not a phone number; refuse before any regex work
_MIN_DIGITS, _MAX_DIGITS = 7, 15   # E.164 allows at most 15 digits, country code included
_ALLOWED = re.compile(r"\+?[0-9 ./()\-]+")
_EXTENSION = re.compile(r"(?i)(.*?[0-9)])\s*(?:extension|ext\.?|x)\s*[0-9]{1,10}")
_NON_DIGITS = re.compile(r"[^0-9]")


@dataclass(frozen=True)
class PhoneNumber:
    """A phone number split into its country calling code and national significant number."""

    country_code: str
    national: str

    @property
    def e164(self) -> str:
        return f"+{self.country_code}{self.national}"


def _invalid(message: str) -> BadRequest:
    return BadRequest(message, code="invalid_phone")


def _country(country: object) -> Country:
    if country is None or country == "":
        country = "US"
    if not isinstance(country, str):
        raise _invalid("country must be an ISO 3166 two-letter code such as US or GB")
    found = COUNTRIES.get(country.strip().upper())
    if found is None:
        raise _invalid("country is not a known ISO 3166 two-letter code")
    return found


def _split_calling_code(digits: str) -> tuple[str, str]:
    for size in (1, 2, 3):
        if digits[:size] in CALLING_CODES:
            return digits[:size], digits[size:]
    raise _invalid("phone number starts with an unknown country calling code")


def _strip_trunk(digits: str, country: Country) -> str:
    trunk = country.trunk
    if not trunk or not digits.startswith(trunk):
        return digits
    if country.national_len is not None and len(digits) != len(trunk) + country.national_len:
        return digits
    return digits[len(trunk):]


def parse_phone(value: object, country: object = "US") -> PhoneNumber:
    """Parse a typed phone number; without a leading + or 00 it is national to `country`."""
    if not isinstance(value, str):
        raise _invalid("phone must be a string")
    if isinstance(country, str) and len(value) <= _MAX_INPUT:
        return _parsed(value, country)
    return _parse(value, country)


# An agent's panel asks about the same caller again and again during a call: the parse of a
# number seen lately is remembered (a PhoneNumber is immutable). A refused one is not: its
# error is raised afresh, and the entries stay few and small.
@lru_cache(maxsize=4096)
def _parsed(value: str, country: str) -> PhoneNumber:
    return _parse(value, country)


def _parse(value: str, country: object) -> PhoneNumber:
    home = _country(country)  # checked even for +numbers: a bad country is a caller's mistake
    text = value.strip()
    if not text:
        raise _invalid("phone is missing")
    if len(text) > _MAX_INPUT:
        raise _invalid(f"phone is longer than {_MAX_INPUT} characters")
    extension = _EXTENSION.fullmatch(text)
    if extension:
        text = extension.group(1)
    if _ALLOWED.fullmatch(text) is None:
        raise _invalid("phone may contain only digits, spaces, - . ( ) / and one leading +")
    international = text.startswith("+")
    if international:
        # "+44 (0)20 7946 0958": the bracketed 0 is the UK trunk prefix, never dialled from abroad.
        text = text.replace("(0)", "", 1)
    digits = _NON_DIGITS.sub("", text)
    if not international and digits.startswith("00"):
        international, digits = True, digits[2:]
    if international:
        code, national = _split_calling_code(digits)
    else:
        code, national = home.calling_code, _strip_trunk(digits, home)
    total = len(code) + len(national)
    if total < _MIN_DIGITS:
        raise _invalid(f"phone has fewer than {_MIN_DIGITS} digits")
    if total > _MAX_DIGITS:
        raise _invalid(f"phone has more than {_MAX_DIGITS} digits")
    return PhoneNumber(code, national)


def written_variants(number: PhoneNumber) -> list[str]:
    """The ways people commonly write this number in Salesforce, without duplicates."""
    national = number.national
    if number.country_code == "1" and len(national) == 10:
        area, exchange, line = national[:3], national[3:6], national[6:]
        variants = [
            f"({area}) {exchange}-{line}", f"{area}-{exchange}-{line}",
            f"{area}.{exchange}.{line}", national, number.e164,
            f"+1 {area} {exchange} {line}", f"1-{area}-{exchange}-{line}",
            f"1 ({area}) {exchange}-{line}", f"+1 ({area}) {exchange}-{line}",
            f"{area} {exchange} {line}",
        ]
    else:
        variants = [number.e164, f"+{number.country_code} {national}", national]
        trunk = _TRUNK_BY_CODE.get(number.country_code)
        if trunk:
            variants.append(trunk + national)
    return list(dict.fromkeys(variants))


def phone_matches(stored: str | None, number: PhoneNumber) -> bool:
    """Whether a stored phone field is this number, comparing trailing digits.

    Stored values may lack the country code ("415.555.0101") or carry a trunk prefix
    ("020 7946 0958"), so the last min(len(stored digits), len(national)) digits must agree,
    and never fewer than 7 of them (short national numbers then include their country code).
    """
    if not isinstance(stored, str) or len(stored) > _MAX_INPUT:
        return False
    extension = _EXTENSION.fullmatch(stored.strip())
    digits = _NON_DIGITS.sub("", extension.group(1) if extension else stored)
    wanted = _NON_DIGITS.sub("", number.e164)
    compared = max(min(len(digits), len(number.national)), _MIN_DIGITS)
    return len(digits) >= compared and digits[-compared:] == wanted[-compared:]
