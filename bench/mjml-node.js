// Compiles one MJML file with the official mjml package, `runs` times in one process,
// and prints each run's milliseconds as JSON. Used by bench/build.py.
const fs = require("fs");
const mjml2html = require("mjml");
const [file, runs] = [process.argv[2], Number(process.argv[3] || 20)];
const source = fs.readFileSync(file, "utf8");
const times = [];
for (let i = 0; i < runs; i++) {
  const start = process.hrtime.bigint();
  mjml2html(source, { validationLevel: "skip" });
  times.push(Number(process.hrtime.bigint() - start) / 1e6);
}
console.log(JSON.stringify(times));
