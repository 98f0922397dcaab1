// Seals a successor refresh token for the reuse grace window: a client that fires two refreshes at once
// gets the same successor back, so the server must keep its value for a few seconds. It is kept
// encrypted (AES-256-GCM, bound to the predecessor's row id) and erased once the window has passed.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'

const IV_BYTES = 12
const TAG_BYTES = 16

export class SuccessorSeal {
  private readonly key: Buffer

  constructor (rootSecret: string) {
    this.key = Buffer.from(hkdfSync('sha256', rootSecret, 'auth-server', 'refresh-successor-seal v1', 32))
  }

  seal (successorToken: string, predecessorId: string): string {
    const iv = randomBytes(IV_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.key, iv)
    cipher.setAAD(Buffer.from(predecessorId))
    const sealed = Buffer.concat([cipher.update(successorToken, 'utf8'), cipher.final()])
    return Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString('base64url')
  }

  /** Returns null when the value was not sealed with this key for this predecessor. */
  open (sealedValue: string, predecessorId: string): string | null {
    try {
      const raw = Buffer.from(sealedValue, 'base64url')
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV_BYTES))
      decipher.setAAD(Buffer.from(predecessorId))
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES))
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8')
    } catch {
      return null
    }
  }
}
