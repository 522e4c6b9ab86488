import { errorFactory, type ErrorTable } from '../protocol/errors.js';

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
} as const satisfies ErrorTable;

export const signingError = errorFactory(SIGNING_ERRORS);
