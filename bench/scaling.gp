# bench/scaling.gp - speedup vs cores used, drawn by `scripts/bench.sh scaling`:
#   gnuplot -e "datafile='scaling.dat'; outfile='scaling.png'; nseries=N; maxcores=C; subtitle='...'" scaling.gp
# datafile: one block per workload and layout (blocks separated by two blank
# lines), its first line the series title in double quotes, then rows of
# "cores-used speedup-wall-time speedup-engine-time".
set terminal pngcairo size 1400,600 enhanced font "DejaVu Sans,10"
set output outfile
set datafile missing "-"
set multiplot layout 1,2 title "mpimap speedup over 1 rank x 1 thread (median of alternated runs): ".subtitle font ",12"
set xlabel "cores used"
set ylabel "speedup over 1 rank x 1 thread"
set xrange [0.8:maxcores + 0.2]
set yrange [0:maxcores + 1.9]
set ytics 0.5
set xtics 1
set grid
set key top left box opaque font ",9" spacing 1.1
set style line 1 lc rgb "#1f77b4" lw 2 pt 7 ps 1.3
set style line 2 lc rgb "#1f77b4" lw 2 dt 2 pt 5 ps 1.3
set style line 3 lc rgb "#1f77b4" lw 2 pt 9 ps 1.8
set style line 4 lc rgb "#d62728" lw 2 pt 7 ps 1.3
set style line 5 lc rgb "#d62728" lw 2 dt 2 pt 5 ps 1.3
set style line 6 lc rgb "#d62728" lw 2 pt 9 ps 1.8
set style line 7 lc rgb "#2ca02c" lw 2 pt 7 ps 1.3
set style line 8 lc rgb "#2ca02c" lw 2 dt 2 pt 5 ps 1.3
set style line 9 lc rgb "#2ca02c" lw 2 pt 9 ps 1.8
set title "wall time of the whole mpirun command (start-up included)"
plot x with lines lc rgb "black" dt 3 lw 1.5 title "ideal", \
     for [i=0:nseries-1] datafile index i using 1:2 with linespoints ls (i % 9) + 1 title columnheader(1)
set title "engine's own time (mpimap -v; excludes mpirun and MPI start-up)"
plot x with lines lc rgb "black" dt 3 lw 1.5 title "ideal", \
     for [i=0:nseries-1] datafile index i using 1:3 with linespoints ls (i % 9) + 1 title columnheader(1)
unset multiplot
