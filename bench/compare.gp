# compare.gp - the chart of bench/run_compare.sh's data file (bench_compare's
# tab-separated rows: pin, workload, clients, system, rate, p50_us, p99_us,
# x_redis, x_raw). Called as
#   gnuplot -e "data='compare.tsv'; out='compare.svg'; stamp='...'" bench/compare.gp
# Four panels: reads and writes per second over the client count, each system
# unpinned (solid) and pinned (dashed); the ratios to Redis that the targets are
# about, with the targets; the mixed run's writes/s beside the Python
# postgres-cache's 933-1,082 (the issue's figure, not measured here) and the
# ceiling its pauses put on 16 writers (a mean pause of 2.5 ms after each write).
if (!exists("data")) data = 'build/compare/compare.tsv'
if (!exists("out")) out = 'build/compare/compare.svg'
if (!exists("stamp")) stamp = ''

if (out[strlen(out)-2:] eq "png") {
    set terminal pngcairo size 1200,860 font 'sans,10' background '#ffffff'
} else {
    set terminal svg size 1200,860 dynamic font 'sans,11' background '#ffffff'
}
set output out
set datafile separator "\t"

# The rows of one pin, workload and system.
sel(pin, wl, sys) = sprintf("< awk -F'\t' '$1==\"%s\" && $2==\"%s\" && $4==\"%s\"' '%s'", pin, wl, sys, data)

systems = "lib-l1 lib-no-l1 raw-libpq redis lib-l1-bg"
color(i) = word("#1f77b4 #2ca02c #ff7f0e #d62728 #9467bd", i)
set style line 1 lc rgb color(1) lw 2 pt 7 ps 0.6
set style line 2 lc rgb color(2) lw 2 pt 7 ps 0.6
set style line 3 lc rgb color(3) lw 2 pt 7 ps 0.6
set style line 4 lc rgb color(4) lw 2 pt 7 ps 0.6
set style line 5 lc rgb color(5) lw 2 pt 7 ps 0.6
set style line 11 lc rgb color(1) lw 2 dt 2 pt 6 ps 0.6
set style line 12 lc rgb color(2) lw 2 dt 2 pt 6 ps 0.6
set style line 13 lc rgb color(3) lw 2 dt 2 pt 6 ps 0.6
set style line 14 lc rgb color(4) lw 2 dt 2 pt 6 ps 0.6
set style line 15 lc rgb color(5) lw 2 dt 2 pt 6 ps 0.6

set multiplot layout 2,2 title "pgcachewatch vs raw libpq vs Redis, one run (".stamp.")" font 'sans,13'
set grid
set logscale x 2
set logscale y 10
set format y "10^{%L}"
set xlabel "client threads"
set key top left font 'sans,9' spacing 0.9

set title "reads, 99% hit (ops/s; solid unpinned, dashed pinned)"
set ylabel "gets/s"
plot for [i=1:4] sel("unpinned", "reads", word(systems, i)) using 3:5 with linespoints ls i title word(systems, i), \
     for [i=1:4] sel("pinned", "reads", word(systems, i)) using 3:5 with linespoints ls (10+i) notitle

set title "writes, invalidation on (ops/s); lib-l1-bg: notify\\_mode BACKGROUND"
set ylabel "sets/s"
plot for [i=1:5] sel("unpinned", "writes", word(systems, i)) using 3:5 with linespoints ls i title word(systems, i), \
     for [i=1:5] sel("pinned", "writes", word(systems, i)) using 3:5 with linespoints ls (10+i) notitle

set title "ratio to Redis at the same client count, with the targets"
set ylabel "x Redis"
set format y "%g"
set yrange [0.01:*]
plot sel("unpinned", "reads", "lib-l1") using 3:8 with linespoints ls 1 title "reads lib-l1 (target >= 20)", \
     sel("pinned", "reads", "lib-l1") using 3:8 with linespoints ls 11 notitle, \
     sel("unpinned", "reads", "lib-no-l1") using 3:8 with linespoints ls 2 title "reads lib-no-l1 (target >= 0.67)", \
     sel("pinned", "reads", "lib-no-l1") using 3:8 with linespoints ls 12 notitle, \
     sel("unpinned", "writes", "lib-l1") using 3:8 with linespoints ls 5 title "writes lib-l1 (target >= 0.33)", \
     sel("pinned", "writes", "lib-l1") using 3:8 with linespoints ls 15 notitle, \
     20 with lines lc rgb color(1) dt 3 notitle, 0.667 with lines lc rgb color(2) dt 3 notitle, \
     0.333 with lines lc rgb color(5) dt 3 notitle
set yrange [*:*]

set title "mixed: 16 writers + 32 readers, 64 keys (writes/s)"
unset logscale x
set xrange [-0.6:4.6]
set xtics ("lib-l1" 0, "lib-no-l1" 1, "raw-libpq" 2, "redis" 3, "lib-l1-bg" 4)
set xlabel ""
set ylabel "writes/s"
set format y "10^{%L}"
set style fill solid 0.8 border -1
set boxwidth 0.18
set key top left
idx(s) = s eq "lib-l1" ? 0 : s eq "lib-no-l1" ? 1 : s eq "raw-libpq" ? 2 : s eq "redis" ? 3 : 4
plot \
     "< awk -F'\t' '$1==\"unpinned\" && $2==\"mixed-writes\"' '".data."'" using (idx(strcol(4)) - 0.3):5 with boxes lc rgb "#4c72b0" title "unpinned, no pauses", \
     "< awk -F'\t' '$1==\"pinned\" && $2==\"mixed-writes\"' '".data."'" using (idx(strcol(4)) - 0.1):5 with boxes lc rgb "#8fb0dd" title "pinned, no pauses", \
     "< awk -F'\t' '$1==\"unpinned\" && $2==\"mixed-paused-writes\"' '".data."'" using (idx(strcol(4)) + 0.1):5 with boxes lc rgb "#dd8452" title "unpinned, harness pauses", \
     "< awk -F'\t' '$1==\"pinned\" && $2==\"mixed-paused-writes\"' '".data."'" using (idx(strcol(4)) + 0.3):5 with boxes lc rgb "#f0b890" title "pinned, harness pauses", \
     933 with lines lc rgb "#555555" dt 2 title "Python postgres-cache 933-1,082 (issue's figure)", \
     1082 with lines lc rgb "#555555" dt 2 notitle, \
     10820 with lines lc rgb "#000000" dt 3 title "10x that (10,820)", \
     6400 with lines lc rgb "#dd8452" dt 4 title "the pauses' ceiling: 16 writers / 2.5 ms"
unset multiplot
