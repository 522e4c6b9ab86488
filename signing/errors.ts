import { errorFactory, type ErrorTable } from '@fleetcast/protocol/errors.js';

export const SIGNING_ERRORS = {
  SIGN_ERR_BAD_KEY_FILE: { message: 'A key file could not be read as a fleetcast Ed25519 key; regenerate it with `fleetcast keys init`', status: 400 },
  SIGN_ERR_BAD_SIGNATURE: { message: 'A signature did not verify; the bytes were changed or signed by another key', status: 400 },
  SIGN_ERR_THRESHOLD: { message: 'Too few valid signatures from distinct trusted keys; more authorised keys must sign', status: 400 },
  SIGN_ERR_UNKNOWN_KEY: { message: 'The signing key is not listed for this role in root.json; sign with a listed key or rotate the root', status: 400 },
  SIGN_ERR_WRONG_TYPE: { message: 'The signed envelope has the wrong payload type for this use', status: 400 },
  SIGN_ERR_BAD_ROOT: { message: 'root.json is not a valid fleetcast root; provision the root made by `fleetcast keys init`', status: 400 },
  SIGN_ERR_ROOT_EXPIRED: { message: 'root.json has expired; rotate the root with `fleetcast keys rotate`', status: 400 },
  SIGN_ERR_BAD_PAYLOAD: { message: 'A signed payload is not valid JSON of the expected shape', status: 400 },
  SIGN_ERR_KEYS_EXIST: { message: 'Key files already exist in the output folder; choose another folder or remove them', status: 409 },
  SIGN_ERR_ROOT_ROLLBACK: { message: 'A root of a version at or below the one already trusted was offered (rollback); keep the trusted root and find out who served the old one', status: 409 },
  SIGN_ERR_ROOT_VERSION: { message: 'A new root skips versions; roots are taken one version at a time (N to N+1): serve every intermediate root in order', status: 400 },
  SIGN_ERR_ROOT_NOT_CROSS_SIGNED: { message: 'A new root is not signed by a threshold of the previous root\'s root keys; sign root N+1 with the old root keys as well as the new ones (`fleetcast keys rotate --keys DIR --sign OLD.key --sign NEW.key --root-key NEW.key`)', status: 400 },
  SIGN_ERR_ROOT_CHAIN_TOO_LONG: { message: 'More new root versions were offered at once than a client takes in one update; update in several steps or raise the cap', status: 400 },
  SIGN_ERR_AUDIT_EXPORT: { message: 'An audit export folder is missing a file or has a file that cannot be read; export it again with `fleetcast audit export`', status: 400 },
  SIGN_ERR_AUDIT_MISMATCH: { message: 'An audit export disagrees with itself: a file, entry or checkpoint does not match what the signed log commits to. The named entry was altered, dropped, reordered or spliced in', status: 400 },
  SIGN_ERR_AUDIT_UNLOGGED: { message: 'A device reported installing a bundle that no logged deployment assigned to it, or that is not a logged signed manifest; find out how it got there', status: 400 },
  SIGN_ERR_AUDIT_UNSIGNED_TAIL: { message: 'Log entries in the export are not covered by any valid signed checkpoint, so they are not evidence; export again from the hub', status: 400 },
} as const satisfies ErrorTable;

export const signingError = errorFactory(SIGNING_ERRORS);
