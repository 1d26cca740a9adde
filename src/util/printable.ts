// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/g;

/**
 * Text from outside (host and VM names, reasons, errors, file contents) for a terminal: control, bidi and
 * invisible characters are shown as \uXXXX, so a name cannot move the cursor, clear the screen or fake a line.
 */
export const printable = (text: string): string => text.replace(UNPRINTABLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
