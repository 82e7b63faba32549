// Fresh OpenSSH ed25519 public keys made with node:crypto (no ssh-keygen needed).
import { generateKeyPairSync } from "node:crypto";

function sshString(buf) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(buf.length);
  return Buffer.concat([len, buf]);
}

/** `ssh-ed25519 AAAA... comment`, as in a .pub file (without the newline). */
export function newPublicKey(comment) {
  const { publicKey } = generateKeyPairSync("ed25519");
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  const blob = Buffer.concat([sshString(Buffer.from("ssh-ed25519")), sshString(raw)]);
  return `ssh-ed25519 ${blob.toString("base64")} ${comment}`;
}

/** `type base64`: the key without its comment. */
export function bare(publicKey) {
  return publicKey.split(/\s+/).slice(0, 2).join(" ");
}

/** The env var `name`, or exit 2 with a message if it is missing. */
export function requireEnv(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`FAIL: environment variable ${name} is required`);
    process.exit(2);
  }
  return v;
}

/** Throws with `what` and both values unless they are equal (compared as JSON). */
export function expectEqual(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

/** Runs `fn`, which must throw; returns the error. */
export async function expectThrows(fn, what) {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error(`${what}: expected an error, the call succeeded`);
}
