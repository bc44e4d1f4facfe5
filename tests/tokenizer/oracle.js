// tests/tokenizer/oracle.js — the reference side of tests/test_tokenizer.c: runs
// the Hugging Face `tokenizers` library (node bindings, @anush008/tokenizers) on
// the same lines as dtr's tokenizer.
//
// usage: node oracle.js TOKENIZER_JSON LINES_FILE OUT_FILE [ADD_SPECIAL]
//   LINES_FILE: one JSON string per line (so samples may hold newlines/tabs).
//   OUT_FILE:   per sample one line "id id id ...\t<JSON of decode(ids, skip
//               special tokens)>".
//   ADD_SPECIAL: 1 to apply the post-processor (default 0).
// Every sample must already be in Unicode NFC (dtr does not apply the NFC
// normalizer); a sample that is not makes this script fail.
"use strict";
const fs = require("fs");

async function main() {
  const [tokPath, linesPath, outPath, addArg] = process.argv.slice(2);
  if (!outPath) {
    console.error("usage: node oracle.js TOKENIZER_JSON LINES_FILE OUT_FILE [ADD_SPECIAL]");
    process.exit(2);
  }
  let Tokenizer;
  try {
    ({ Tokenizer } = require("@anush008/tokenizers"));
  } catch (e) {
    console.error("oracle.js: cannot load @anush008/tokenizers (NODE_PATH=" +
      (process.env.NODE_PATH || "") + "): run tools/test, which installs it");
    process.exit(3);
  }
  const addSpecial = addArg === "1";
  const tok = Tokenizer.fromFile(tokPath);
  const lines = fs.readFileSync(linesPath, "utf8").split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const text = JSON.parse(lines[i]);
    if (text !== text.normalize("NFC")) {
      console.error(`oracle.js: sample ${i} is not in NFC: ${JSON.stringify(text)}`);
      process.exit(4);
    }
    const enc = await tok.encode(text, null, { addSpecialTokens: addSpecial });
    const ids = enc.getIds();
    const dec = await tok.decode(ids, true);
    out.push(ids.join(" ") + "\t" + JSON.stringify(dec));
  }
  fs.writeFileSync(outPath, out.join("\n") + (out.length ? "\n" : ""));
}

main().catch((e) => {
  console.error("oracle.js: " + (e && e.stack ? e.stack : e));
  process.exit(1);
});
