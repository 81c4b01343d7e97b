// Compiles one MJML file with the official mjml package, `runs` times in one process, and
// prints each run's wall and CPU milliseconds as JSON. Used by bench/build.py.
const fs = require("fs");
const mjml2html = require("mjml");
const [file, runs] = [process.argv[2], Number(process.argv[3] || 20)];
const source = fs.readFileSync(file, "utf8");
const wall = [];
const cpu = [];
for (let i = 0; i < runs; i++) {
  const start = process.hrtime.bigint();
  const used = process.cpuUsage();
  mjml2html(source, { validationLevel: "skip" });
  const spent = process.cpuUsage(used);
  wall.push(Number(process.hrtime.bigint() - start) / 1e6);
  cpu.push((spent.user + spent.system) / 1000);
}
console.log(JSON.stringify({ wall, cpu }));
