// Usernames are identities people read, so two names that look alike must not name two accounts.
//
// 1. PRECIS, RFC 8265 §3.3 (UsernameCaseMapped profile of the IdentifierClass, RFC 8264): width
//    mapping (full-width and half-width forms to their ordinary ones), case mapping (Unicode
//    toLowerCase), NFC; then every code point must be valid in the IdentifierClass (letters, digits
//    and printable ASCII; no spaces, symbols, controls, default-ignorables, compatibility forms or
//    old Hangul jamo) and the Bidi Rule must hold. The result is `usernameKey`: what logins and
//    uniqueness compare. No maintained PRECIS package exists on npm (precis-js is gone from the
//    registry), so the profile's steps are written here over V8's Unicode property escapes.
// 2. This server's own restriction (RFC 8265 lets applications narrow the class): 3 to 64 letters,
//    digits, marks or `._@-`, starting with a letter or digit; every letter or digit must be
//    Identifier_Status=Allowed in UTS #39 (the General Security Profile: keeps out small capitals
//    such as ᴀ, phonetic and technical letters, and the invisible Hangul filler U+3164).
// 3. UTS #39 confusable skeleton (§4): NFD, the confusables.txt mapping (the unhomoglyph package
//    carries Unicode's data), NFD again. A new name whose skeleton equals a user's is taken: Cyrillic
//    а/о/р/і, Greek ο or dotless ı in `alice` name nobody new. The skeleton is stored with a unique
//    index, so the rule holds when look-alikes register at the same moment.
import unhomoglyph from 'unhomoglyph'
import { IDENTIFIER_STATUS_ALLOWED } from './identifier-status.js'

/** The longest username a login may send (characters); longer ones are refused as malformed input. */
export const LOGIN_USERNAME_MAX_LENGTH = 256

/** Full-width and half-width forms (decomposition types <wide> and <narrow>), and the ideographic space. */
const WIDE_OR_NARROW = /[\u3000\uFF01-\uFFEE]/gu
/** The server's shape, on the prepared form. */
const USERNAME_SHAPE = /^[\p{L}\p{N}][\p{L}\p{N}\p{Mn}\p{Mc}._@-]{2,63}$/u
const SEPARATORS = /^[._@-]$/u
/** IdentifierClass (RFC 8264 §9): what is valid besides ASCII7. */
const LETTER_DIGIT = /^[\p{Ll}\p{Lu}\p{Lo}\p{Lm}\p{Mn}\p{Mc}\p{Nd}]$/u
const IGNORABLE_OR_NONCHARACTER = /^[\p{Default_Ignorable_Code_Point}\p{Noncharacter_Code_Point}]$/u
/** RFC 8264 §9.9 OldHangulJamo: conjoining jamo (Hangul_Syllable_Type L, V, T). */
const OLD_HANGUL_JAMO = /^[\u1100-\u11FF\uA960-\uA97F\uD7B0-\uD7FF]$/u
/** Letters of right-to-left scripts (RFC 5893's Bidi_Class R and AL, by script). */
const RIGHT_TO_LEFT = /^[\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}\p{Script=Samaritan}\p{Script=Mandaic}\p{Script=Adlam}]$/u
const LETTER = /^\p{L}$/u

/** Whether a name has letters of both directions. */
function mixesDirections (key: string): boolean {
  let rightToLeft = false
  let leftToRight = false
  for (const character of key) {
    if (!LETTER.test(character)) continue
    if (RIGHT_TO_LEFT.test(character)) rightToLeft = true
    else leftToRight = true
  }
  return rightToLeft && leftToRight
}

const codePoint = (character: string) => `U+${character.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`

/**
 * The PRECIS UsernameCaseMapped preparation and mapping (RFC 8265 §3.3.2–3.3.3, rules 1, 3, 4): what
 * logins look accounts up by. A name that does not pass registration's checks maps to a key no
 * account has.
 */
export function usernameKey (username: string): string {
  return username.replace(WIDE_OR_NARROW, (character) => character.normalize('NFKC')).toLowerCase().normalize('NFC')
}

/** The form kept for display: width-mapped and NFC, case as typed (RFC 8265's UsernameCasePreserved). */
export function displayUsername (username: string): string {
  return username.replace(WIDE_OR_NARROW, (character) => character.normalize('NFKC')).normalize('NFC')
}

/** Why one code point of a prepared name is refused, or null. */
function characterProblem (character: string): string | null {
  if (SEPARATORS.test(character)) return null
  const invalid = !LETTER_DIGIT.test(character) || IGNORABLE_OR_NONCHARACTER.test(character) ||
    OLD_HANGUL_JAMO.test(character) || character.normalize('NFKC') !== character || !IDENTIFIER_STATUS_ALLOWED.test(character)
  if (!invalid) return null
  const shown = /^[\p{L}\p{N}\p{P}\p{S}]$/u.test(character) ? `"${character}" (${codePoint(character)})` : codePoint(character)
  return `username must not contain ${shown}: usernames are letters and digits in common use, and . _ @ -`
}

/** Returns what is wrong with a username for registration (one sentence), or null. */
export function usernameProblem (username: string): string | null {
  const key = usernameKey(username)
  if (!USERNAME_SHAPE.test(key)) {
    for (const character of key) {
      const problem = characterProblem(character)
      if (problem !== null && !/^[\p{L}\p{N}\p{M}._@-]$/u.test(character)) return problem
    }
    return 'username must be 3 to 64 letters, digits or . _ @ - and start with a letter or digit'
  }
  for (const character of key) {
    const problem = characterProblem(character)
    if (problem !== null) return problem
  }
  // The Bidi Rule (RFC 5893 §2), as far as one direction per name: no right-to-left letters beside
  // left-to-right ones.
  if (mixesDirections(key)) return 'username must not mix right-to-left and left-to-right letters'
  return null
}

/** The UTS #39 skeleton (§4) of a prepared name: equal skeletons mean the names look alike. */
export function usernameSkeleton (key: string): string {
  return unhomoglyph(key.normalize('NFD')).normalize('NFD')
}
