import java.util.ArrayList;

public class Main {
  public static void main(String[] args) {
    ArrayList<long[]> keep = new ArrayList<>();
    for (int i = 0; i < 1024; i++) {
      long[] a = new long[128 * 1024]; /* 1 MiB, zeroed by the JVM: touched */
      keep.add(a);
    }
    System.out.println(keep.size());
  }
}
