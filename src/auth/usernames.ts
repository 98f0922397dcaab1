// Usernames are compared after NFKC normalization and lower-casing, so look-alike forms (full-width
// letters, ligatures, case) name the same account. The form the user typed is kept for display.
export const USERNAME_MAX_LENGTH = 64
/** The longest username a login may send (characters); longer ones are refused as malformed input. */
export const LOGIN_USERNAME_MAX_LENGTH = 256
const USERNAME_SHAPE = /^[\p{L}\p{N}][\p{L}\p{N}._@-]{2,63}$/u

export function usernameKey (username: string): string {
  return username.normalize('NFKC').toLowerCase()
}

/** Returns what is wrong with a username for registration, or null. */
export function usernameProblem (username: string): string | null {
  const key = usernameKey(username)
  if (!USERNAME_SHAPE.test(key)) {
    return 'username must be 3 to 64 letters, digits or . _ @ - and start with a letter or digit'
  }
  return null
}
