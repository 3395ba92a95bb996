import fc from "fast-check";

// Hostile inputs for the API fuzz test: text Postgres, S3 or a terminal chokes on, numbers past
// every range, JSON nested past any parser's comfort, and values of the wrong type.

/** Strings that have broken (or could break) something between the socket and the database. */
const nasty = fc.constantFrom(
  "",
  "\u0000",
  "a\u0000b",
  "\ud800",
  "x\udc00y",
  "\udbff\udfff",
  "\u001b[2J\u001b[H",
  "\u202e\u2066",
  "\ufeff",
  "%",
  "%00",
  "%zz",
  "%ED%A0%80",
  "..",
  "../../etc/passwd",
  "/",
  "//",
  "\\",
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "null",
  "1e309",
  "-0",
  "NaN",
  "𝕏🧨",
  " ",
  "\t\r\n",
  "'; DROP TABLE \"Batch\"; --",
  "00000000-0000-0000-0000-000000000000",
  "x".repeat(1025),
  "é".repeat(600),
);

/** Any text: random code units (lone surrogates and controls included), the nasty list, long runs. */
export const text: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  { weight: 3, arbitrary: nasty },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme-composite", maxLength: 20 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom("\u0000", "\ud800", "\udc00", "a", "/", "%"), maxLength: 30 }) },
);

/** Numbers at and past every edge JSON can write. */
export const number: fc.Arbitrary<number> = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -0, 1, -1, 1000, 1001, 1e308, -1e308, 2 ** 53 + 2, Number.MAX_SAFE_INTEGER, Number.MIN_VALUE, 0.5),
);

/** Any JSON value: text and numbers as above, the wrong types, nesting a few levels deep. */
export const json: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    text,
    number,
    fc.boolean(),
    fc.constant(null),
    fc.array(tie("value"), { maxLength: 5 }),
    fc.dictionary(text, tie("value"), { maxKeys: 5 }),
  ),
})).value;

/** JSON texts no object arbitrary makes: numbers past float range, deep nesting, duplicate and prototype keys, broken syntax. */
export const rawJsonText: fc.Arbitrary<string> = fc.oneof(
  fc.integer({ min: 1, max: 40_000 }).map((d) => "[".repeat(d) + "]".repeat(d)),
  fc.integer({ min: 1, max: 8_000 }).map((d) => '{"a":'.repeat(d) + "1" + "}".repeat(d)),
  fc.integer({ min: 1, max: 40_000 }).map((d) => `{"bucket":"docpipe-staging","prefixes":${"[".repeat(d)}"x"${"]".repeat(d)}}`),
  fc.constantFrom(
    '{"bucket":"docpipe-staging","prefixes":["a/"],"label":1e99999}',
    '{"bucket":"docpipe-staging","prefixes":["a/"],"onTooLarge":123456789012345678901234567890}',
    '{"bucket":"docpipe-staging","bucket":"docpipe-work","prefixes":["a/"]}',
    '{"__proto__":{"admin":true},"bucket":"docpipe-staging","prefixes":["a/"]}',
    '{"constructor":{"prototype":{"x":1}},"bucket":"docpipe-staging","prefixes":["a/"]}',
    '{"bucket":"docpipe-staging","prefixes":["\\ud800"]}',
    '{"bucket":"docpipe-staging","prefixes":["\\u0000"]}',
    '{"bucket":"docpipe-staging","prefixes":["a/"],"label":"\\u001b[2J"}',
    "{",
    "",
    "null",
    "[]",
    '"string"',
    "1e309",
    "\ufeff{}",
    '{"a":1,}',
  ),
);

/** Percent-encodes every code unit that is not unreserved; a lone surrogate becomes the bytes of its WTF-8 form. */
export function encode(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ch = s[i]!;
    if (/[A-Za-z0-9\-._~]/.test(ch)) out += ch;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && s.charCodeAt(i + 1) >= 0xdc00 && s.charCodeAt(i + 1) <= 0xdfff) {
      out += encodeURIComponent(s.slice(i, i + 2));
      i++;
    } else if (c >= 0xd800 && c <= 0xdfff) out += [0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f)].map((b) => `%${b.toString(16).toUpperCase()}`).join("");
    else out += encodeURIComponent(ch);
  }
  return out;
}

/** A path segment: well encoded, or raw characters a URL may hold (a stray %, dots), or far too long. */
export const segment = (valid: string[]): fc.Arbitrary<string> =>
  fc.oneof(
    ...(valid.length > 0 ? [{ weight: 3, arbitrary: fc.constantFrom(...valid) }] : []),
    { weight: 2, arbitrary: fc.uuid() },
    { weight: 3, arbitrary: text.map(encode) },
    { weight: 2, arbitrary: fc.stringMatching(/^[%A-Za-z0-9._~!$&'()*+,;=:@-]{0,60}$/) },
    { weight: 1, arbitrary: fc.constantFrom("x".repeat(150), "x".repeat(9_000), "%00", "%ED%A0%80", "..", ".", "%2F", "a%2Fb") },
  );

/** A query string: the route's own keys and any others, each value hostile, repeated keys included. */
export const query = (keys: string[], values: Record<string, string[]>): fc.Arbitrary<string> =>
  fc
    .array(
      fc.tuple(
        fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...keys) }, { weight: 1, arbitrary: text }),
        fc.oneof(
          { weight: 2, arbitrary: fc.constantFrom(...Object.values(values).flat(), "") },
          { weight: 2, arbitrary: text },
          { weight: 1, arbitrary: number.map(String) },
        ),
      ),
      { maxLength: 5 },
    )
    .chain((pairs) =>
      fc.constantFrom(
        pairs.map(([k, v]) => `${encode(k)}=${encode(v)}`).join("&"),
        // Raw: what a careless client sends, percent signs and all.
        pairs.map(([k, v]) => [...`${k}=${v}`].map((c) => (/^[\x21-\x7e]$/.test(c) && c !== "#" ? c : encode(c))).join("")).join("&"),
      ),
    );

/** Header values a client could send (Node refuses controls and NUL itself: its 400 must be in our shape too). */
const printable = fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c));
const headerValue = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: printable, maxLength: 60 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary-ascii", maxLength: 60 }).map((s) => s.replace(/[\r\n]/g, "")) },
  { weight: 1, arbitrary: fc.constantFrom("", " ", "\u0000", "a\u0001b", "Bearer", "Bearer ", "Bearer \u00ff", "é", "x".repeat(9_000), "x".repeat(20_000)) },
);

/** Extra headers: the ones the API reads with hostile values, and random ones. Framing (Host, Content-Length) is the sender's. */
export const headers = (apiKey: string): fc.Arbitrary<[string, string][]> =>
  fc
    .tuple(
      fc.oneof(
        { weight: 8, arbitrary: fc.constant<[string, string][]>([["x-api-key", apiKey]]) },
        { weight: 1, arbitrary: fc.constant<[string, string][]>([["authorization", `Bearer ${apiKey}`]]) },
        { weight: 1, arbitrary: fc.constant<[string, string][]>([]) },
        { weight: 2, arbitrary: headerValue.map((v): [string, string][] => [["x-api-key", v]]) },
        { weight: 1, arbitrary: headerValue.map((v): [string, string][] => [["authorization", v]]) },
      ),
      fc.array(
        fc.tuple(
          fc.oneof(
            fc.constantFrom("accept", "accept-encoding", "x-forwarded-for", "idempotency-key", "origin", "range", "if-none-match", "x-api-key", "cookie"),
            fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/),
          ),
          headerValue,
        ),
        { maxLength: 2 },
      ),
    )
    .map(([auth, more]) => [...auth, ...more]);

/** Content types a body may come with, right and wrong. */
export const contentType = fc.constantFrom<string | undefined>(
  "application/json",
  "application/json",
  "application/json; charset=utf-8",
  "application/json; charset=latin1",
  "APPLICATION/JSON",
  "application/json;;",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/octet-stream",
  "",
  undefined,
);
